//! Monthly cost per resource, before / after / delta.
//!
//! Platform resources are priced by the provider from their catalog tier
//! (their planned `monthly_cost`), falling back to the catalog here when the
//! value is unknown at plan time; other types come from a price book. A
//! resource priced by neither is *unpriced* and listed as such: a report never
//! silently counts it as $0.

use std::collections::BTreeMap;
use std::path::Path;

use platform_catalog::Catalog;
use serde::Serialize;
use serde_json::Value as Json;

use crate::plan::{Action, Mode, PlanSummary};

#[derive(Debug, thiserror::Error)]
pub enum CostError {
    #[error("{path}: {message}")]
    PriceBook { path: String, message: String },
}

/// How one resource type is priced.
#[derive(Debug, Clone, PartialEq)]
enum Rule {
    Flat(f64),
    ByAttribute {
        attribute: String,
        prices: BTreeMap<String, f64>,
    },
}

/// Prices for resource types the catalog does not cover.
#[derive(Debug, Clone)]
pub struct PriceBook {
    pub currency: String,
    rules: BTreeMap<String, Rule>,
}

/// No price book: every non-platform type is unpriced; catalog prices are
/// in USD.
impl Default for PriceBook {
    fn default() -> Self {
        PriceBook {
            currency: "USD".to_owned(),
            rules: BTreeMap::new(),
        }
    }
}

/// A price as given, unless it is negative (a negative price would let one
/// resource pay for another under a budget).
fn non_negative(price: f64, what: impl FnOnce() -> String) -> Result<f64, String> {
    if price < 0.0 {
        Err(format!("{} must not be negative ({price})", what()))
    } else {
        Ok(price)
    }
}

fn number(value: &hcl::Value) -> Option<f64> {
    match value {
        hcl::Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

impl PriceBook {
    pub fn load(path: &Path) -> Result<PriceBook, CostError> {
        let fail = |message: String| CostError::PriceBook {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        Self::parse(&text).map_err(fail)
    }

    pub fn parse(text: &str) -> Result<PriceBook, String> {
        platform_catalog::check_nesting(text).map_err(|too_deep| too_deep.to_string())?;
        let body: hcl::Body = hcl::from_str(text).map_err(|e| e.to_string())?;
        let mut book = PriceBook {
            currency: "USD".to_owned(),
            rules: BTreeMap::new(),
        };
        for attr in body.attributes() {
            match (attr.key(), hcl::Value::from(attr.expr().clone())) {
                ("currency", hcl::Value::String(c)) => book.currency = c,
                (key, _) => return Err(format!("unknown top-level attribute {key:?}")),
            }
        }
        for block in body.blocks() {
            if block.identifier() != "resource" {
                return Err(format!(
                    "unknown block {:?}; expected resource \"TYPE\" {{ … }}",
                    block.identifier()
                ));
            }
            let [label] = block.labels() else {
                return Err("a resource block takes exactly one label, the resource type".into());
            };
            let type_ = label.as_str().to_owned();
            let mut monthly = None;
            let mut by = None;
            let mut prices = None;
            for attr in block.body().attributes() {
                let value = hcl::Value::from(attr.expr().clone());
                match attr.key() {
                    "monthly" => {
                        monthly = Some(non_negative(
                            number(&value).ok_or(format!("{type_}: monthly must be a number"))?,
                            || format!("{type_}: monthly"),
                        )?)
                    }
                    "by" => match value {
                        hcl::Value::String(s) => by = Some(s),
                        _ => return Err(format!("{type_}: by must be an attribute name")),
                    },
                    "prices" => match value {
                        hcl::Value::Object(map) => {
                            let mut table = BTreeMap::new();
                            for (key, price) in map {
                                let price = non_negative(
                                    number(&price).ok_or(format!(
                                        "{type_}: price of {key:?} must be a number"
                                    ))?,
                                    || format!("{type_}: price of {key:?}"),
                                )?;
                                table.insert(key, price);
                            }
                            prices = Some(table);
                        }
                        _ => return Err(format!("{type_}: prices must be an object")),
                    },
                    other => return Err(format!("{type_}: unknown attribute {other:?}")),
                }
            }
            let rule = match (monthly, by, prices) {
                (Some(m), None, None) => Rule::Flat(m),
                (None, Some(attribute), Some(prices)) => Rule::ByAttribute { attribute, prices },
                _ => return Err(format!("{type_}: set either monthly, or by and prices")),
            };
            if book.rules.insert(type_.clone(), rule).is_some() {
                return Err(format!("{type_}: priced twice"));
            }
        }
        Ok(book)
    }

    /// The monthly price of one resource's attribute values, or why not.
    fn price(&self, type_: &str, values: &Json) -> Result<f64, String> {
        match self.rules.get(type_) {
            None => Err(format!("no price for {type_} in the price book")),
            Some(Rule::Flat(m)) => Ok(*m),
            Some(Rule::ByAttribute { attribute, prices }) => match values.get(attribute) {
                Some(Json::String(key)) => prices
                    .get(key)
                    .copied()
                    .ok_or_else(|| format!("{attribute} = {key:?} is not in the price book")),
                Some(Json::Null) | None => Err(format!("{attribute} is unknown until apply")),
                Some(other) => Err(format!("{attribute} = {other} is not in the price book")),
            },
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ResourceCost {
    pub address: String,
    pub before: Option<f64>,
    pub after: Option<f64>,
    /// `after - before`; `None` when unpriced (never counted as $0).
    pub delta: Option<f64>,
    /// `catalog`, `pricebook`, or absent when unpriced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The resource could not be priced (`unpriced_reason` says why).
    pub unpriced: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unpriced_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CostReport {
    pub currency: String,
    pub monthly_before: f64,
    pub monthly_after: f64,
    pub monthly_delta: f64,
    pub resources: Vec<ResourceCost>,
    pub n_unpriced: usize,
}

/// The catalog's offering for a platform resource type, if it is one.
fn offering<'a>(
    catalog: Option<&'a Catalog>,
    type_: &str,
) -> Option<&'a platform_catalog::Offering> {
    let catalog = catalog?;
    catalog
        .offerings
        .iter()
        .find(|o| catalog.resource_type(o) == type_)
}

/// A platform resource's monthly price: the provider's planned value, else
/// the catalog tier's base price (quantity-priced tiers need the provider).
fn platform_price(offering: &platform_catalog::Offering, values: &Json) -> Result<f64, String> {
    if let Some(cost) = values.get("monthly_cost").and_then(Json::as_f64) {
        return Ok(cost);
    }
    let version = values
        .get("offering_version")
        .and_then(Json::as_str)
        .and_then(|v| offering.version(v))
        .unwrap_or_else(|| offering.current());
    let tier = match values.get("tier").and_then(Json::as_str) {
        Some(name) => version.tier(name),
        None => version.tiers.first(),
    }
    .ok_or("tier unknown until apply")?;
    tier.monthly_price(&hcl::Map::new())
}

/// Prices every managed resource change of a plan.
pub fn estimate(plan: &PlanSummary, catalog: Option<&Catalog>, book: &PriceBook) -> CostReport {
    let mut resources = Vec::new();
    for change in plan.resources.iter().filter(|r| r.mode == Mode::Managed) {
        let price = |values: &Json| -> Result<(f64, &'static str), String> {
            match offering(catalog, &change.type_) {
                Some(offering) => platform_price(offering, values).map(|p| (p, "catalog")),
                None => book.price(&change.type_, values).map(|p| (p, "pricebook")),
            }
        };
        let exists_before = !matches!(change.action, Action::Create);
        let exists_after = !matches!(change.action, Action::Delete);
        let before = exists_before.then(|| price(&change.before));
        let after = exists_after.then(|| price(&change.after));
        let mut unpriced = None;
        let mut source = None;
        let mut value = |side: Option<Result<(f64, &'static str), String>>| match side {
            None => Some(0.0),
            Some(Ok((p, s))) => {
                source = Some(s.to_owned());
                Some(p)
            }
            Some(Err(reason)) => {
                unpriced.get_or_insert(reason);
                None
            }
        };
        let before = value(before).filter(|_| exists_before);
        let after = value(after).filter(|_| exists_after);
        let delta = if unpriced.is_some() {
            None
        } else {
            Some(after.unwrap_or(0.0) - before.unwrap_or(0.0))
        };
        resources.push(ResourceCost {
            address: change.address.clone(),
            before,
            after,
            delta,
            source,
            unpriced: unpriced.is_some(),
            unpriced_reason: unpriced,
        });
    }
    let priced = resources.iter().filter(|r| !r.unpriced);
    let monthly_before: f64 = priced.clone().filter_map(|r| r.before).sum();
    let monthly_after: f64 = priced.filter_map(|r| r.after).sum();
    CostReport {
        currency: book.currency.clone(),
        monthly_before,
        monthly_after,
        monthly_delta: monthly_after - monthly_before,
        n_unpriced: resources.iter().filter(|r| r.unpriced).count(),
        resources,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn price_book_parses_flat_and_tables() {
        let book = PriceBook::parse(
            r#"
currency = "USD"
resource "aws_instance" {
  by = "instance_type"
  prices = { "t3.micro" = 7.59 }
}
resource "null_resource" {
  monthly = 0
}
"#,
        )
        .expect("parses");
        let vm = serde_json::json!({"instance_type": "t3.micro"});
        assert_eq!(book.price("aws_instance", &vm), Ok(7.59));
        let big = serde_json::json!({"instance_type": "x9.huge"});
        assert!(
            book.price("aws_instance", &big)
                .is_err_and(|e| e.contains("x9.huge"))
        );
        assert_eq!(book.price("null_resource", &Json::Null), Ok(0.0));
        assert!(book.price("aws_lambda_function", &Json::Null).is_err());
    }

    #[test]
    fn no_price_book_still_has_a_currency() {
        assert_eq!(PriceBook::default().currency, "USD");
    }

    #[test]
    fn bad_price_books_are_errors() {
        for text in [
            "resource \"a\" {}",
            "resource \"a\" { monthly = \"x\" }",
            "resource \"a\" { monthly = 1 }\nresource \"a\" { monthly = 2 }",
            "thing \"a\" { monthly = 1 }",
            "resource \"a\" { by = \"size\" }",
        ] {
            assert!(PriceBook::parse(text).is_err(), "{text}");
        }
        assert_eq!(
            PriceBook::parse("resource \"a\" { monthly = -5 }").map(|_| ()),
            Err("a: monthly must not be negative (-5)".to_owned())
        );
        assert_eq!(
            PriceBook::parse("resource \"a\" {\n  by = \"size\"\n  prices = { big = -1 }\n}")
                .map(|_| ()),
            Err("a: price of \"big\" must not be negative (-1)".to_owned())
        );
    }

    #[test]
    fn example_price_book_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/pricebooks/aws.hcl");
        let book = PriceBook::load(&path).expect("loads");
        assert_eq!(book.currency, "USD");
        assert!(book.rules.len() >= 8);
        // What the AWS driver makes, and the same types unmanaged beside
        // platform resources, are priced (at no fixed monthly cost), not
        // reported as unpriced.
        for ty in [
            "aws_s3_bucket",
            "aws_s3_bucket_public_access_block",
            "aws_s3_bucket_versioning",
            "aws_sqs_queue",
            "aws_iam_role",
            "aws_iam_user_policy",
        ] {
            assert!(
                matches!(book.rules.get(ty), Some(Rule::Flat(p)) if *p == 0.0),
                "{ty}"
            );
        }
    }
}
