# Every offering of the catalog, e.g. for a policy or a portal that lists
# what can be ordered and who owns it.
data "platform_catalog" "all" {}

output "offerings" {
  value = {
    for offering in data.platform_catalog.all.offerings :
    offering.resource_type => offering.owner_team
  }
}
