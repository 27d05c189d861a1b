//! `vr apps|buildpacks|stacks|squads|hosts|ingredients|swarms list|show|create|edit|delete`: the
//! deployment model's definitions, from YAML files and `--set KEY=VALUE` flags. One generic path
//! for every kind; vrd validates and says what is wrong.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use clap::Subcommand;
use serde_json::{Map, Value};

use super::client::{connect, explain};
use crate::api::{Kind, VrdClient};

/// What to do with definitions of one kind.
#[derive(Debug, Subcommand)]
pub enum ObjectAction {
    /// List them, one per line (all fields with --json).
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Show one as YAML (or JSON).
    Show {
        /// Its name.
        name: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Create one from a YAML file and/or --set flags.
    Create {
        /// Its name (else the file's `name`).
        name: Option<String>,
        /// A YAML file with its fields.
        #[arg(short = 'f', long)]
        file: Option<PathBuf>,
        /// A field: KEY=VALUE, VALUE read as YAML (`--set size=2`, `--set config.DB=x`,
        /// `--set ingredients=[a,b]`); repeatable, applied after the file.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Change one: the file's fields and the --set flags replace those fields; with neither, the
    /// definition opens in $EDITOR.
    Edit {
        /// Its name.
        name: String,
        /// A YAML file whose fields replace the definition's.
        #[arg(short = 'f', long)]
        file: Option<PathBuf>,
        /// A field: KEY=VALUE, as for create; repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Delete one nothing uses (a swarm is scaled to nothing first).
    Delete {
        /// Its name.
        name: String,
    },
}

/// Runs `action` on definitions of `kind`.
pub async fn run(socket: &Path, kind: Kind, action: ObjectAction) -> anyhow::Result<i32> {
    let client = connect(socket).await?;
    match action {
        ObjectAction::List { json } => {
            let all = client.objects_list(kind).await.map_err(explain)?;
            if json {
                say!("{}", serde_json::to_string_pretty(&all)?)?;
            } else {
                for v in &all {
                    say!("{}", summary(kind, v))?;
                }
            }
        }
        ObjectAction::Show { name, json } => {
            let v = client.objects_get(kind, name).await.map_err(explain)?;
            print_value(&v, json)?;
        }
        ObjectAction::Create { name, file, set } => {
            let mut spec = match &file {
                Some(f) => read_yaml(f)?,
                None => Map::new(),
            };
            if let Some(name) = name {
                spec.insert("name".into(), Value::String(name));
            }
            apply_sets(&mut spec, &set)?;
            let stored = client.objects_create(kind, Value::Object(spec)).await.map_err(explain)?;
            eprintln!("vr: created {kind} {}", name_of(&stored));
        }
        ObjectAction::Edit { name, file, set } => {
            let current = client.objects_get(kind, name.clone()).await.map_err(explain)?;
            let mut spec = current.as_object().cloned().unwrap_or_default();
            if file.is_none() && set.is_empty() {
                spec = edit_in_editor(&spec)?;
            }
            if let Some(f) = &file {
                spec.extend(read_yaml(f)?);
            }
            apply_sets(&mut spec, &set)?;
            if spec.get("name").and_then(Value::as_str) != Some(name.as_str()) {
                bail!(
                    "a {kind}'s name can't change (it is its identity): create a new one and delete '{name}'"
                );
            }
            client.objects_update(kind, Value::Object(spec)).await.map_err(explain)?;
            eprintln!("vr: changed {kind} {name}");
        }
        ObjectAction::Delete { name } => {
            client.objects_delete(kind, name.clone()).await.map_err(explain)?;
            eprintln!("vr: deleted {kind} {name}");
        }
    }
    Ok(0)
}

fn name_of(v: &Value) -> &str {
    v.get("name").and_then(Value::as_str).unwrap_or("?")
}

/// One line per definition: the name and the fields that tell them apart.
fn summary(kind: Kind, v: &Value) -> String {
    let f = |k: &str| match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    };
    match kind {
        Kind::App => format!("{:<24} {:<4} {:<16} {}", f("name"), f("repo_type"), f("stack"), f("repo_url")),
        Kind::Buildpack => format!("{:<24} {:>5} {}", f("name"), f("order"), f("repo_url")),
        Kind::Stack => format!("{:<24} {}", f("name"), f("base_image_url")),
        Kind::Host => format!("{:<24} {:<12} active={} {}", f("name"), f("squad"), f("active"), f("address")),
        Kind::Swarm => swarm_line(v),
        Kind::Squad | Kind::Ingredient => f("name"),
    }
}

/// `vr list-swarms` and `vr swarms list`: name, app, version, config, proc, squad, size, routing.
pub fn swarm_line(v: &Value) -> String {
    let f = |k: &str| {
        v.get(k)
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
            .unwrap_or_else(|| "-".into())
    };
    let routing = match v.get("pool").and_then(Value::as_str) {
        Some(pool) => format!("{pool}@{}", v.get("balancer").and_then(Value::as_str).unwrap_or("builtin")),
        None => "-".into(),
    };
    format!(
        "{:<28} {:<14} {:<12} {:<8} {:<8} {:<10} {:>4} {}",
        f("name"),
        f("app"),
        f("version"),
        f("config_name"),
        f("proc_name"),
        f("squad"),
        f("size"),
        routing
    )
}

fn print_value(v: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        say!("{}", serde_json::to_string_pretty(v)?)?;
    } else {
        say_raw!("{}", serde_yaml_ng::to_string(v)?)?;
    }
    Ok(())
}

fn read_yaml(path: &Path) -> anyhow::Result<Map<String, Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("failed to read {}", path.display()))?;
    yaml_map(&text).with_context(|| format!("{} is not a YAML mapping of fields", path.display()))
}

fn yaml_map(text: &str) -> anyhow::Result<Map<String, Value>> {
    Ok(crate::model::yaml::mapping(text)?)
}

/// Applies `KEY=VALUE` flags; dotted keys reach into mappings (`config.DB=x`).
pub fn apply_sets(spec: &mut Map<String, Value>, sets: &[String]) -> anyhow::Result<()> {
    for set in sets {
        let (key, text) =
            set.split_once('=').ok_or_else(|| anyhow!("--set {set}: write KEY=VALUE, e.g. --set size=2"))?;
        let value: Value = if text.is_empty() {
            Value::String(String::new())
        } else {
            serde_yaml_ng::from_str(text).with_context(|| format!("--set {set}: the value is not YAML"))?
        };
        let mut path: Vec<&str> = key.split('.').collect();
        let last =
            path.pop().filter(|k| !k.is_empty()).ok_or_else(|| anyhow!("--set {set}: the key is empty"))?;
        let mut map = &mut *spec;
        for part in path {
            let entry = map.entry(part.to_string()).or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            map = entry.as_object_mut().ok_or_else(|| anyhow!("--set {set}: {part} is not a mapping"))?;
        }
        if value.is_null() {
            map.remove(last);
        } else {
            map.insert(last.to_string(), value);
        }
    }
    Ok(())
}

/// Opens the definition as YAML in $VISUAL/$EDITOR (vi when unset) and reads it back.
fn edit_in_editor(spec: &Map<String, Value>) -> anyhow::Result<Map<String, Value>> {
    let editor = std::env::var("VISUAL").or_else(|_| std::env::var("EDITOR")).unwrap_or_else(|_| "vi".into());
    let file = tempfile::Builder::new().suffix(".yaml").tempfile().context("failed to create a temp file")?;
    std::fs::write(file.path(), serde_yaml_ng::to_string(spec)?)?;
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(file.path())
        .status()
        .with_context(|| format!("failed to start the editor '{editor}'"))?;
    if !status.success() {
        bail!("the editor '{editor}' failed ({status}); nothing was changed");
    }
    let text = std::fs::read_to_string(file.path())?;
    yaml_map(&text).context("the edited text is not a YAML mapping; nothing was changed")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn set_flags_parse_yaml_values_and_reach_into_mappings() {
        let mut spec = Map::new();
        let sets =
            ["size=2", "config.DB=postgres://x", "ingredients=[a, b]", "pool=web", "pool=~", "env.N='3'"];
        apply_sets(&mut spec, &sets.map(String::from)).unwrap();
        assert_eq!(
            Value::Object(spec),
            json!({"size": 2, "config": {"DB": "postgres://x"}, "ingredients": ["a", "b"], "env": {"N": "3"}})
        );
        let err = apply_sets(&mut Map::new(), &["size".to_string()]).unwrap_err().to_string();
        assert!(err.contains("KEY=VALUE"), "{err}");
    }
}
