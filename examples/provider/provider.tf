terraform {
  required_providers {
    platform = {
      source = "platform/platform"
    }
  }
}

# The catalog comes from PLATFORM_CATALOG (a directory of *.hcl files) or,
# when unset, the examples catalog compiled into the provider.
provider "platform" {
  # Team recorded on resources that do not set `team` themselves.
  default_team = "checkout"
}
