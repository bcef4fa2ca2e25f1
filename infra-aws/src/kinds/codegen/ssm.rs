//! Code generator of the SSM parameter kind. A `SecureString`'s value is never read back: the
//! declaration reads it from an environment variable and ignores its changes.

use infra_core::import::{rust_str, Discovered, Generated, ImportNames};
use infra_core::Value;

use super::{env_var, strings, Chain};

/// `SsmParameter::string(..)` / `string_list(..)` / `secure_string(..)` with its value (a
/// secret's from the environment), description and tags.
pub(crate) fn ssm_parameter(o: &Discovered, name: &str, names: &ImportNames) -> Generated {
    let kind = o
        .props
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("String");
    let constructor = match kind {
        "SecureString" => "secure_string",
        "StringList" => "string_list",
        _ => "string",
    };
    let parameter = o.props.get("name").and_then(Value::as_str).unwrap_or(&o.id);
    let args = format!("{}, {}", rust_str(name), rust_str(parameter));
    let mut c = Chain::new(o, names, "infra::aws::SsmParameter", constructor, &args);
    match kind {
        "SecureString" => {
            let var = env_var("INFRA_SECRET", name);
            c.comment(format!(
                "its value is a secret and was not read: set `{var}` to the value of `{parameter}` \
                 when planning"
            ));
            c.comment(
                "`ignore_changes` keeps the adopted value, which import can't compare; remove it \
                 to overwrite the parameter with the declared value",
            );
            c.call("from_env", &rust_str(&var));
        }
        "StringList" => {
            let items: Vec<String> = strings(c.get("value"))
                .iter()
                .map(|s| rust_str(s))
                .collect();
            c.call("values", &format!("[{}]", items.join(", ")));
        }
        _ => {
            let value = c.str("value").unwrap_or_default();
            let arg = rust_str(value);
            c.call("value", &arg);
        }
    }
    c.str_unless("description", "description", None);
    c.tags();
    if kind == "SecureString" {
        c.call("ignore_changes", "&[\"secure_value\"]");
    }
    c.done()
}
