//! Evaluating catalog expressions (compose inputs, outputs, price quantities).
//!
//! Evaluation is hcl-rs's own (`hcl::eval`); this module only builds the variables an
//! expression can see: `input`, `tier` (with its `values`) and `primitive` (each with its
//! `outputs`). The loader has already checked every reference, so an error here means the
//! runtime data is incomplete (e.g. a primitive's driver did not return an output).

use std::collections::BTreeMap;

use hcl::eval::{Context, Evaluate};
use hcl::{Map, Value};

use crate::model::{Output, Primitive, Tier};

/// What expressions can see. `primitive_outputs`: primitive name → that primitive's outputs.
#[derive(Debug, Clone, Copy)]
pub struct EvalScope<'a> {
    pub inputs: &'a Map<String, Value>,
    pub tier_values: &'a Map<String, Value>,
    pub primitive_outputs: &'a BTreeMap<String, Map<String, Value>>,
}

impl EvalScope<'_> {
    fn context(&self) -> Context<'static> {
        let mut ctx = Context::new();
        ctx.declare_var("input", Value::Object(self.inputs.clone()));
        let mut tier = Map::new();
        tier.insert(
            "values".to_string(),
            Value::Object(self.tier_values.clone()),
        );
        ctx.declare_var("tier", Value::Object(tier));
        let mut primitives = Map::new();
        for (name, outputs) in self.primitive_outputs {
            let mut primitive = Map::new();
            primitive.insert("outputs".to_string(), Value::Object(outputs.clone()));
            primitives.insert(name.clone(), Value::Object(primitive));
        }
        ctx.declare_var("primitive", Value::Object(primitives));
        ctx
    }
}

pub(crate) fn evaluate(expr: &hcl::Expression, ctx: &Context) -> Result<Value, String> {
    check_arithmetic(expr, ctx)?;
    expr.evaluate(ctx).map_err(|err| err.kind().to_string())
}

/// hcl's arithmetic asserts a finite result (`debug_assert!` in
/// hcl-primitives): `1/0`, `0/0`, `x % 0` or `1e308 * 10` would panic in a
/// debug build (and become a non-finite number in a release one). Every
/// arithmetic operation is checked bottom-up first, computed in `f64`, and a
/// non-finite result is an error instead. Operands that do not evaluate to
/// numbers are left to hcl, which reports them itself.
pub fn check_arithmetic(expr: &hcl::Expression, ctx: &Context) -> Result<(), String> {
    use hcl::Expression as E;
    use hcl::expr::{BinaryOperator, Operation};
    match expr {
        E::Operation(op) => match op.as_ref() {
            Operation::Unary(unary) => check_arithmetic(&unary.expr, ctx),
            Operation::Binary(binary) => {
                check_arithmetic(&binary.lhs_expr, ctx)?;
                check_arithmetic(&binary.rhs_expr, ctx)?;
                let op: fn(f64, f64) -> f64 = match binary.operator {
                    BinaryOperator::Plus => |a, b| a + b,
                    BinaryOperator::Minus => |a, b| a - b,
                    BinaryOperator::Mul => |a, b| a * b,
                    BinaryOperator::Div => |a, b| a / b,
                    BinaryOperator::Mod => |a, b| a % b,
                    _ => return Ok(()),
                };
                let number = |e: &hcl::Expression| match e.evaluate(ctx) {
                    Ok(Value::Number(n)) => Some(n),
                    _ => None,
                };
                let (Some(x), Some(y)) = (number(&binary.lhs_expr), number(&binary.rhs_expr))
                else {
                    return Ok(());
                };
                // hcl computes whole numbers in 64-bit integers, which
                // overflow (a panic with overflow checks, a wrong number
                // without); the exact result must fit in an i64.
                let whole = |n: &hcl::Number| {
                    n.as_i64()
                        .map(i128::from)
                        .or_else(|| n.as_u64().map(i128::from))
                };
                if let (Some(a), Some(b)) = (whole(&x), whole(&y)) {
                    let exact = match binary.operator {
                        BinaryOperator::Plus => Some(a + b),
                        BinaryOperator::Minus => Some(a - b),
                        BinaryOperator::Mul => a.checked_mul(b),
                        _ => Some(0),
                    };
                    let fits = |v: i128| i64::try_from(v).is_ok();
                    if !fits(a) || !fits(b) || !exact.is_some_and(fits) {
                        return Err(format!(
                            "arithmetic on {a} and {b} overflows a 64-bit integer"
                        ));
                    }
                }
                if let (Some(a), Some(b)) = (x.as_f64(), y.as_f64())
                    && !op(a, b).is_finite()
                {
                    return Err(format!(
                        "arithmetic on {a} and {b} has no finite result (division by zero or overflow)"
                    ));
                }
                Ok(())
            }
        },
        E::Parenthesis(inner) => check_arithmetic(inner, ctx),
        E::Array(items) => items.iter().try_for_each(|e| check_arithmetic(e, ctx)),
        E::Object(object) => object.values().try_for_each(|e| check_arithmetic(e, ctx)),
        E::Conditional(cond) => {
            check_arithmetic(&cond.cond_expr, ctx)?;
            check_arithmetic(&cond.true_expr, ctx)?;
            check_arithmetic(&cond.false_expr, ctx)
        }
        E::FuncCall(call) => call.args.iter().try_for_each(|e| check_arithmetic(e, ctx)),
        E::Traversal(traversal) => check_arithmetic(&traversal.expr, ctx),
        _ => Ok(()),
    }
}

impl Primitive {
    /// Evaluates every input expression; the error names the failing input.
    pub fn evaluate_inputs(&self, scope: &EvalScope) -> Result<Map<String, Value>, String> {
        let ctx = scope.context();
        let mut values = Map::new();
        for (name, expr) in &self.inputs {
            let value = evaluate(expr, &ctx)
                .map_err(|err| format!("primitive \"{}\" input \"{name}\": {err}", self.name))?;
            values.insert(name.clone(), value);
        }
        Ok(values)
    }

    /// The inputs that evaluate in `scope`, leaving out those that do not: at plan time,
    /// an input depending on a value not known yet (left out of `scope.inputs`, or another
    /// primitive's outputs) cannot be evaluated, and is checked when it can.
    pub fn evaluate_known_inputs(&self, scope: &EvalScope) -> Map<String, Value> {
        let ctx = scope.context();
        self.inputs
            .iter()
            .filter_map(|(name, expr)| Some((name.clone(), evaluate(expr, &ctx).ok()?)))
            .collect()
    }
}

impl Output {
    pub fn evaluate(&self, scope: &EvalScope) -> Result<Value, String> {
        evaluate(&self.value, &scope.context())
            .map_err(|err| format!("output \"{}\": {err}", self.name))
    }
}

/// Hours in a billing month, as cloud price sheets count them (24 × 365 / 12).
const HOURS_PER_MONTH: f64 = 730.0;

impl Tier {
    /// `None` transitions_to allows any transition; otherwise only the listed tiers. Staying
    /// on the same tier is always allowed.
    pub fn allows_transition_to(&self, to: &str) -> bool {
        to == self.name
            || match &self.transitions_to {
                None => true,
                Some(targets) => targets.iter().any(|target| target == to),
            }
    }

    /// Monthly price: amount × (unit `hour` → 730, `month` → 1) × quantity, where quantity is
    /// evaluated with `input.*` bound to `inputs` (absent → 1).
    pub fn monthly_price(&self, inputs: &Map<String, Value>) -> Result<f64, String> {
        let per_month = match self.price.unit.as_str() {
            "month" => 1.0,
            "hour" => HOURS_PER_MONTH,
            other => {
                return Err(format!(
                    "tier \"{}\": unknown price unit \"{other}\"",
                    self.name
                ));
            }
        };
        let quantity = match &self.price.quantity {
            None => 1.0,
            Some(expr) => {
                let mut ctx = Context::new();
                ctx.declare_var("input", Value::Object(inputs.clone()));
                let value = evaluate(expr, &ctx)
                    .map_err(|err| format!("tier \"{}\" price quantity: {err}", self.name))?;
                match value.as_number().and_then(|number| number.as_f64()) {
                    Some(quantity) => quantity,
                    None => {
                        return Err(format!(
                            "tier \"{}\" price quantity: expected a number, got {}",
                            self.name,
                            crate::guardrail::fmt_value(&value)
                        ));
                    }
                }
            }
        };
        Ok(self.price.amount * per_month * quantity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Price;

    fn expr(text: &str) -> hcl::Expression {
        match text.parse() {
            Ok(expr) => expr,
            Err(err) => panic!("bad test expression {text}: {err}"),
        }
    }

    fn map(pairs: &[(&str, Value)]) -> Map<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn check(text: &str, expected: Result<Value, &str>) {
        let inputs = map(&[("name", Value::from("app")), ("limit", Value::from(20))]);
        let tier_values = map(&[("max_connections", Value::from(50))]);
        let mut primitive_outputs = BTreeMap::new();
        primitive_outputs.insert(
            "owner".to_string(),
            map(&[("name", Value::from("app_owner"))]),
        );
        let scope = EvalScope {
            inputs: &inputs,
            tier_values: &tier_values,
            primitive_outputs: &primitive_outputs,
        };
        let output = Output {
            name: "o".into(),
            description: None,
            value: expr(text),
            sensitive: false,
        };
        assert_eq!(output.evaluate(&scope), expected.map_err(str::to_string));
    }

    #[test]
    fn expressions() {
        check("\"${input.name}_owner\"", Ok(Value::from("app_owner")));
        check("primitive.owner.outputs.name", Ok(Value::from("app_owner")));
        check(
            "tier.values.max_connections + input.limit",
            Ok(Value::from(70)),
        );
        check(
            "primitive.db.outputs.name",
            Err("output \"o\": no such key: `db`"),
        );
    }

    #[test]
    fn primitive_inputs() {
        let primitive = Primitive {
            name: "db".into(),
            driver: "postgres.database".into(),
            inputs: vec![
                ("name".into(), expr("\"${input.name}_db\"")),
                ("owner".into(), expr("primitive.owner.outputs.name")),
            ],
            depends_on: vec!["owner".into()],
            input_locations: Default::default(),
        };
        let inputs = map(&[("name", Value::from("app"))]);
        let tier_values = Map::new();
        let mut primitive_outputs = BTreeMap::new();
        let scope = EvalScope {
            inputs: &inputs,
            tier_values: &tier_values,
            primitive_outputs: &primitive_outputs,
        };
        assert_eq!(
            primitive.evaluate_inputs(&scope),
            Err("primitive \"db\" input \"owner\": no such key: `owner`".to_string())
        );
        // At plan: what can be evaluated, without what depends on the owner.
        assert_eq!(
            primitive.evaluate_known_inputs(&scope),
            map(&[("name", Value::from("app_db"))])
        );
        primitive_outputs.insert(
            "owner".to_string(),
            map(&[("name", Value::from("app_owner"))]),
        );
        let scope = EvalScope {
            inputs: &inputs,
            tier_values: &tier_values,
            primitive_outputs: &primitive_outputs,
        };
        assert_eq!(
            primitive.evaluate_inputs(&scope),
            Ok(map(&[
                ("name", Value::from("app_db")),
                ("owner", Value::from("app_owner"))
            ]))
        );
    }

    fn tier(amount: f64, unit: &str, quantity: Option<&str>) -> Tier {
        Tier {
            name: "small".into(),
            price: Price {
                amount,
                unit: unit.into(),
                currency: "USD".into(),
                quantity: quantity.map(expr),
            },
            values: Map::new(),
            requires_approval: false,
            transitions_to: None,
        }
    }

    #[test]
    fn monthly_price() {
        let inputs = map(&[("storage_gb", Value::from(100)), ("name", Value::from("x"))]);
        assert_eq!(tier(25.0, "month", None).monthly_price(&inputs), Ok(25.0));
        assert_eq!(tier(0.5, "hour", None).monthly_price(&inputs), Ok(365.0));
        assert_eq!(
            tier(0.1, "month", Some("input.storage_gb")).monthly_price(&inputs),
            Ok(10.0)
        );
        assert_eq!(
            tier(1.0, "hour", Some("input.storage_gb / 10")).monthly_price(&inputs),
            Ok(7300.0)
        );
        assert_eq!(
            tier(1.0, "month", Some("input.name")).monthly_price(&inputs),
            Err("tier \"small\" price quantity: expected a number, got \"x\"".to_string())
        );
        assert_eq!(
            tier(1.0, "month", Some("input.missing")).monthly_price(&inputs),
            Err("tier \"small\" price quantity: no such key: `missing`".to_string())
        );
    }

    #[test]
    fn transitions() {
        let mut it = tier(1.0, "month", None);
        assert!(it.allows_transition_to("large"));
        it.transitions_to = Some(vec!["tiny".into()]);
        assert!(it.allows_transition_to("tiny"));
        assert!(it.allows_transition_to("small"));
        assert!(!it.allows_transition_to("large"));
    }
}
