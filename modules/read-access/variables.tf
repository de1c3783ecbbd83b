variable "consumer" {
  description = "Who reads (e.g. \"analytics\"): part of every role's name, <database>_<consumer>_<schema>_ro."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,15}$", var.consumer))
    error_message = "The consumer must be 2-16 lowercase letters and digits, starting with a letter."
  }
}

variable "team" {
  description = "Team recorded on the roles (the consumer's team); null takes the provider's default_team."
  type        = string
  default     = null
}

variable "sources" {
  description = "What to read, by a key of your choice: { orders = { database = \"orders\", schema = \"app\" } }."
  type = map(object({
    database = string
    schema   = string
  }))
}

variable "connection_limit" {
  description = "Maximum concurrent connections of each read-only role."
  type        = number
  default     = 5
}

variable "labels" {
  description = "Labels recorded on every role."
  type        = map(string)
  default     = {}
}
