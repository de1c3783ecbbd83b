# A price book: monthly on-demand list prices (USD) for resource types the
# catalog does not price. Platform resources are priced from their catalog
# tier; anything in neither place is reported as unpriced, never as $0.
#
# `monthly` is the price of one instance; or `by` names an attribute whose
# planned value picks the price from `prices` (a value missing from the table
# makes the resource unpriced, with the reason).
currency = "USD"

resource "aws_instance" {
  by = "instance_type"
  prices = {
    "t3.nano"   = 3.80
    "t3.micro"  = 7.59
    "t3.small"  = 15.18
    "t3.medium" = 30.37
    "t3.large"  = 60.74
    "m6i.large" = 70.08
    "m6i.xlarge" = 140.16
    "c6i.large" = 62.05
    "r6i.large" = 91.98
  }
}

resource "aws_db_instance" {
  by = "instance_class"
  prices = {
    "db.t3.micro"  = 12.41
    "db.t3.small"  = 24.82
    "db.t3.medium" = 49.64
    "db.m6g.large" = 113.88
    "db.r6g.large" = 157.68
  }
}

resource "aws_nat_gateway" {
  monthly = 32.85
}

resource "aws_lb" {
  monthly = 16.43
}

resource "aws_eip" {
  monthly = 3.65
}

resource "aws_elasticache_cluster" {
  by = "node_type"
  prices = {
    "cache.t3.micro"  = 12.41
    "cache.t3.small"  = 24.82
    "cache.m6g.large" = 109.50
  }
}

resource "aws_s3_bucket" {
  # Storage and requests are usage-based; the bucket itself costs nothing.
  monthly = 0
}

# A bucket's settings as separate resources (encryption, public access block,
# versioning, lifecycle, policy): no charge of their own.
resource "aws_s3_bucket_server_side_encryption_configuration" {
  monthly = 0
}

resource "aws_s3_bucket_public_access_block" {
  monthly = 0
}

resource "aws_s3_bucket_versioning" {
  monthly = 0
}

resource "aws_s3_bucket_lifecycle_configuration" {
  monthly = 0
}

resource "aws_s3_bucket_policy" {
  monthly = 0
}

resource "aws_sqs_queue" {
  # Billed per request (the first million a month are free); a queue itself
  # costs nothing.
  monthly = 0
}

resource "aws_sqs_queue_redrive_policy" {
  monthly = 0
}

# IAM is free.
resource "aws_iam_role" {
  monthly = 0
}

resource "aws_iam_role_policy" {
  monthly = 0
}

resource "aws_iam_user" {
  monthly = 0
}

resource "aws_iam_user_policy" {
  monthly = 0
}

# Free resource types: priced at 0 on purpose (not "unpriced").
resource "null_resource" {
  monthly = 0
}

resource "random_password" {
  monthly = 0
}
