# One offering's versions, tiers, prices and owners, e.g. to show a team what
# each tier costs before it picks one.
data "platform_offering" "database" {
  name = "postgres_database"
}

output "database_tier_prices" {
  value = {
    for tier in data.platform_offering.database.tiers :
    tier.name => "${tier.amount} ${tier.currency}/${tier.unit}"
  }
}
