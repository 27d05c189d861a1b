//! Definitions (apps, buildpacks, stacks, squads, hosts, ingredients, swarms): one generic create,
//! update, read, list and delete over their tables. The model type's JSON is the `spec` column;
//! the columns other rows refer to are filled from it, so SQLite enforces the references, and each
//! reference is checked first so the error names what is missing.

use super::sql::{args, Conn, DbError, DbResult, OptionalRow, ToValue, Value as SqlValue};
use serde_json::Value;

use super::{now_secs, State, StateError};
use crate::model::deploy::{Definition, Kind};

/// The table of a kind.
fn table(kind: Kind) -> &'static str {
    match kind {
        Kind::App => "apps",
        Kind::Buildpack => "buildpacks",
        Kind::Stack => "stacks",
        Kind::Squad => "squads",
        Kind::Host => "hosts",
        Kind::Ingredient => "ingredients",
        Kind::Swarm => "swarms",
    }
}

/// The reference columns of a definition: (column, value, the kind it refers to).
fn refs(def: &Definition) -> Vec<(&'static str, SqlValue, Option<Kind>)> {
    match def {
        Definition::App(a) => vec![("stack", a.stack.to_value(), Some(Kind::Stack))],
        Definition::Buildpack(b) => vec![("ord", b.order.to_value(), None)],
        Definition::Host(h) => vec![("squad", h.squad.to_value(), Some(Kind::Squad))],
        Definition::Swarm(s) => {
            vec![("app", s.app.to_value(), Some(Kind::App)), ("squad", s.squad.to_value(), Some(Kind::Squad))]
        }
        Definition::Stack(_) | Definition::Squad(_) | Definition::Ingredient(_) => vec![],
    }
}

/// Who refers to a kind: (table, column, the referring kind).
fn users_of(kind: Kind) -> &'static [(&'static str, &'static str, Kind)] {
    match kind {
        Kind::Stack => &[("apps", "stack", Kind::App)],
        Kind::App => &[("swarms", "app", Kind::Swarm)],
        Kind::Squad => &[("hosts", "squad", Kind::Host), ("swarms", "squad", Kind::Swarm)],
        Kind::Ingredient => &[("swarm_ingredients", "ingredient", Kind::Swarm)],
        Kind::Buildpack | Kind::Host | Kind::Swarm => &[],
    }
}

fn exists(conn: &Conn, kind: Kind, name: &str) -> DbResult<bool> {
    let sql = format!("SELECT 1 FROM {} WHERE name = ?1", table(kind));
    Ok(conn.query_row(&sql, args![name], |_| Ok(())).optional()?.is_some())
}

fn check_refs(tx: &Conn, def: &Definition, what: &str) -> Result<(), StateError> {
    let mut targets: Vec<(Kind, String)> = refs(def)
        .into_iter()
        .filter_map(|(_, value, kind)| match value {
            SqlValue::Text(name) => Some((kind?, name)),
            _ => None,
        })
        .collect();
    if let Definition::Swarm(s) = def {
        targets.extend(s.ingredients.iter().map(|i| (Kind::Ingredient, i.clone())));
    }
    for (target_kind, target) in targets {
        if !exists(tx, target_kind, &target).map_err(StateError::query(what))? {
            return Err(StateError::MissingRef {
                kind: def.kind(),
                name: def.name().to_string(),
                target_kind,
                target,
            });
        }
    }
    Ok(())
}

fn write(tx: &Conn, def: &Definition, create: bool, what: &str) -> Result<(), StateError> {
    let (kind, name) = (def.kind(), def.name().to_string());
    let present = exists(tx, kind, &name).map_err(StateError::query(what))?;
    match (create, present) {
        (true, true) => return Err(StateError::Exists { kind, name }),
        (false, false) => return Err(StateError::NotFound { kind, name }),
        _ => {}
    }
    check_refs(tx, def, what)?;
    let spec = serde_json::to_string(&def.to_value())
        .map_err(|source| StateError::Encode { what: what.to_string(), source })?;
    let cols = refs(def);
    let now = now_secs();
    let sql = if create {
        let names: String = cols.iter().map(|(c, ..)| format!(", {c}")).collect();
        let marks: String = (0..cols.len()).map(|i| format!(", ?{}", i + 4)).collect();
        format!(
            "INSERT INTO {} (name, spec, created, updated{names}) VALUES (?1, ?2, ?3, ?3{marks})",
            table(kind)
        )
    } else {
        let sets: String =
            cols.iter().enumerate().map(|(i, (c, ..))| format!(", {c} = ?{}", i + 4)).collect();
        format!("UPDATE {} SET spec = ?2, updated = ?3{sets} WHERE name = ?1", table(kind))
    };
    let mut values = vec![name.to_value(), spec.to_value(), now.to_value()];
    values.extend(cols.into_iter().map(|(_, v, _)| v));
    tx.execute(&sql, &values).map_err(StateError::query(what))?;
    if let Definition::Swarm(s) = def {
        tx.execute("DELETE FROM swarm_ingredients WHERE swarm = ?1", args![name])
            .map_err(StateError::query(what))?;
        for (position, ingredient) in s.ingredients.iter().enumerate() {
            tx.execute(
                "INSERT INTO swarm_ingredients (swarm, ingredient, position) VALUES (?1, ?2, ?3)",
                args![name, ingredient, position as i64],
            )
            .map_err(StateError::query(what))?;
        }
    }
    Ok(())
}

fn decode(kind: Kind, spec: &str) -> DbResult<Definition> {
    let value: Value = serde_json::from_str(spec).map_err(DbError::parse(0))?;
    Definition::from_value(kind, value).map_err(DbError::parse(0))
}

fn users(conn: &Conn, kind: Kind, name: &str) -> DbResult<Vec<String>> {
    let mut found = Vec::new();
    for (tbl, col, user_kind) in users_of(kind) {
        let key = if *tbl == "swarm_ingredients" { "swarm" } else { "name" };
        let sql = format!("SELECT {key} FROM {tbl} WHERE {col} = ?1 ORDER BY {key}");
        let rows: Vec<_> = conn.query_map(&sql, args![name], |r| r.get::<String>(0))?;
        for row in rows {
            found.push(format!("{user_kind} {row}"));
        }
    }
    Ok(found)
}

impl State {
    /// Stores a new definition (`create`) or replaces an existing one.
    pub async fn put_definition(&self, def: Definition, create: bool) -> Result<(), StateError> {
        let what = format!("store {} {}", def.kind(), def.name());
        self.call(what, move |db, what| {
            let tx = db.conn.transaction().map_err(StateError::query(what))?;
            write(&tx, &def, create, what)?;
            tx.commit().map_err(StateError::query(what))
        })
        .await
    }

    /// One definition, if it exists.
    pub async fn get_definition(&self, kind: Kind, name: String) -> Result<Option<Definition>, StateError> {
        self.call(format!("read {kind} {name}"), move |db, what| {
            let sql = format!("SELECT spec FROM {} WHERE name = ?1", table(kind));
            let spec: Option<String> = db
                .conn
                .query_row(&sql, args![name], |r| r.get(0))
                .optional()
                .map_err(StateError::query(what))?;
            spec.map(|s| decode(kind, &s)).transpose().map_err(StateError::query(what))
        })
        .await
    }

    /// One definition, or [`StateError::NotFound`].
    pub async fn definition(&self, kind: Kind, name: &str) -> Result<Definition, StateError> {
        self.get_definition(kind, name.to_string())
            .await?
            .ok_or_else(|| StateError::NotFound { kind, name: name.to_string() })
    }

    /// Every definition of `kind` (buildpacks in detect order, the rest by name).
    pub async fn list_definitions(&self, kind: Kind) -> Result<Vec<Definition>, StateError> {
        self.call(format!("list {kind}s"), move |db, what| {
            let order = if kind == Kind::Buildpack { "ord, name" } else { "name" };
            let sql = format!("SELECT spec FROM {} ORDER BY {order}", table(kind));
            let rows: Vec<_> =
                db.conn.query_map(&sql, &[], |r| r.get::<String>(0)).map_err(StateError::query(what))?;
            let mut defs = Vec::new();
            for spec in rows {
                defs.push(decode(kind, &spec).map_err(StateError::query(what))?);
            }
            Ok(defs)
        })
        .await
    }

    /// Deletes a definition nothing refers to.
    pub async fn delete_definition(&self, kind: Kind, name: String) -> Result<(), StateError> {
        self.call(format!("delete {kind} {name}"), move |db, what| {
            let tx = db.conn.transaction().map_err(StateError::query(what))?;
            let users = users(&tx, kind, &name).map_err(StateError::query(what))?;
            if !users.is_empty() {
                return Err(StateError::InUse { kind, name, users: users.join(", ") });
            }
            let sql = format!("DELETE FROM {} WHERE name = ?1", table(kind));
            let n = tx.execute(&sql, args![name]).map_err(StateError::query(what))?;
            if n == 0 {
                return Err(StateError::NotFound { kind, name });
            }
            tx.commit().map_err(StateError::query(what))
        })
        .await
    }
}
