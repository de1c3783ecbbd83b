variable "team" {
  description = "The team: prefixes its schemas (<team>_<schema>) and roles, and is recorded on every resource."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,15}$", var.team))
    error_message = "The team must be 2-16 lowercase letters and digits, starting with a letter."
  }
}

variable "database" {
  description = "The shared database the tenant schemas live in (it must exist)."
  type        = string
}

variable "schemas" {
  description = "The team's schemas, without the team prefix: [\"orders\"] makes schema <team>_orders."
  type        = set(string)
  default     = ["main"]
}

variable "readers" {
  description = "Existing roles (e.g. a reporting group) granted read access to every schema of the team."
  type        = list(string)
  default     = []
}

variable "connection_limit" {
  description = "Maximum concurrent connections of each of the team's login roles."
  type        = number
  default     = 10
}

variable "labels" {
  description = "Labels recorded on every resource."
  type        = map(string)
  default     = {}
}
