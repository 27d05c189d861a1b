//! Releases: a build plus everything merged for it, frozen, with VR's 8-character hash; and the
//! proc.yaml a release becomes on a host.
//!
//! The merge order is explicit (VR's was an alphabetical accident of its ORM ordering):
//! config = `{}` ← each ingredient's config in the order the swarm lists them ← the swarm's config;
//! env = the build's config_vars ← each ingredient's env in that order ← the swarm's env. Every merge
//! is shallow (a later key replaces an earlier one whole), as VR's `dict.update`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::hash::make_hash;
use super::{IngredientSpec, SwarmSpec, VolumeSpec};
use crate::model::network::Network;
use crate::model::proc_data::Seccomp;

/// A file of the coordinator's content-addressed store, named by its content: every host that
/// runs a proc of it resolves it to a file of its own (its store, filled from the coordinator's).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ArtifactRef {
    /// Its sha256, 64 lowercase hex digits.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

/// Whether `text` is a sha256 as vr writes one (and the store names files): 64 lowercase hex
/// digits.
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A stack image as procs get it: the image cache name, where it comes from, its md5.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    /// Its name in the image cache.
    pub name: String,
    /// Where a host fetches it when it is not in the store (a stack's base tarball: a URL or a
    /// path every host can read). Releases made before content addresses hold a store path here.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// Its md5.
    pub md5: String,
    /// The image in the store (images vrd built), by content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<ArtifactRef>,
}

/// A successful build as a release needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRef {
    /// Its id.
    pub id: u64,
    /// The version it built.
    pub version: String,
    /// Where a host fetches the slug when it has no `artifact` (releases made before content
    /// addresses hold a store path of the coordinator here).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// The slug's md5.
    pub md5: String,
    /// The slug in the store, by content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<ArtifactRef>,
    /// The image it was built on (and runs on).
    pub image: ImageRef,
    /// The buildpacks' config_vars.
    pub env: Map<String, Value>,
}

impl BuildRef {
    /// VR's `Build.hash`: make_hash(file_md5, os_image.file_md5).
    pub fn hash(&self) -> String {
        make_hash(&[Value::String(self.md5.clone()), Value::String(self.image.md5.clone())])
    }
}

/// A frozen release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseSpec {
    /// The app.
    pub app: String,
    /// The build.
    pub build: BuildRef,
    /// settings.yaml.
    pub config: Map<String, Value>,
    /// The environment.
    pub env: Map<String, Value>,
    /// Bind mounts.
    pub volumes: Vec<VolumeSpec>,
    /// The run-as user.
    pub run_as: String,
    /// Memory limit.
    pub mem_limit: Option<String>,
    /// Memory+swap limit.
    pub memsw_limit: Option<String>,
    /// The procs' network.
    #[serde(default, skip_serializing_if = "Network::is_host")]
    pub network: Network,
    /// The procs' seccomp filter.
    #[serde(default, skip_serializing_if = "Seccomp::is_default")]
    pub seccomp: Seccomp,
}

impl ReleaseSpec {
    /// Freezes what `swarm` and its `ingredients` (in the swarm's order) say over `build`.
    pub fn merge(
        app: &str,
        build: BuildRef,
        swarm: &SwarmSpec,
        ingredients: &[IngredientSpec],
    ) -> ReleaseSpec {
        let mut config = Map::new();
        let mut env = build.env.clone();
        for ingredient in ingredients {
            config.extend(ingredient.config.clone());
            env.extend(ingredient.env.clone());
        }
        config.extend(swarm.config.clone());
        env.extend(swarm.env.clone());
        ReleaseSpec {
            app: app.to_string(),
            build,
            config,
            env,
            volumes: swarm.volumes.clone(),
            run_as: swarm.run_as.clone(),
            mem_limit: swarm.mem_limit.clone(),
            memsw_limit: swarm.memsw_limit.clone(),
            network: swarm.network,
            seccomp: swarm.seccomp,
        }
    }

    /// VR's `Release.hash`: make_hash(build.hash, config, env, volumes, run_as, mem_limit,
    /// memsw_limit), first 8 hex digits. Config and env are hashed as their values; equal
    /// releases (VR's `release_eq`) have equal hashes. vr's own keys (network, seccomp) join the
    /// hash only when not at their defaults, so every release VR could make keeps its hash.
    pub fn hash(&self) -> String {
        let opt = |o: &Option<String>| o.clone().map(Value::String).unwrap_or(Value::Null);
        let volumes = if self.volumes.is_empty() {
            Value::Null
        } else {
            Value::Array(self.volumes.iter().map(|v| Value::from(v.clone())).collect())
        };
        let mut parts = vec![
            Value::String(self.build.hash()),
            Value::Object(self.config.clone()),
            Value::Object(self.env.clone()),
            volumes,
            Value::String(self.run_as.clone()),
            opt(&self.mem_limit),
            opt(&self.memsw_limit),
        ];
        parts.extend(self.vr_keys().into_iter().map(|(k, v)| Value::String(format!("{k}={v}"))));
        let full = make_hash(&parts);
        full[..8].to_string()
    }

    /// vr's own keys that are not at their defaults, as proc.yaml writes them.
    fn vr_keys(&self) -> Vec<(&'static str, &'static str)> {
        let mut keys = Vec::new();
        if self.network == Network::Private {
            keys.push(("network", "private"));
        }
        if self.seccomp == Seccomp::Unconfined {
            keys.push(("seccomp", "unconfined"));
        }
        keys
    }

    /// The six-part name of the proc this release becomes at `at`.
    pub fn proc_name(
        &self,
        at: &Placement,
    ) -> Result<crate::model::names::ProcName, crate::model::names::NameError> {
        crate::model::names::ProcName::new(
            &self.app,
            &self.build.version,
            &at.config_name,
            &self.hash(),
            &at.proc_name,
            at.port,
        )
    }
}

/// Where and as what one proc of a release runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// The config name.
    pub config_name: String,
    /// The Procfile entry.
    pub proc_name: String,
    /// The host's name.
    pub host: String,
    /// The port.
    pub port: u16,
    /// Where the proc is reached (the host's address): proc.yaml's `host`, which uptests get as
    /// their host argument; the host's name when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// One proc to run: a release at a placement. Typed in-process; its JSON is the wire form to a
/// peer, and a host turns it into the proc.yaml its supervisor keeps ([`ProcOrder::proc_yaml`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcOrder {
    /// The release.
    pub release: ReleaseSpec,
    /// Where and as what.
    pub at: Placement,
}

/// Where a host found a release's build and image: files (or URLs) its runner fetches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The slug.
    pub build_url: String,
    /// The stack image.
    pub image_url: String,
}

impl ProcOrder {
    /// The proc's six-part name.
    pub fn name(&self) -> Result<crate::model::names::ProcName, crate::model::names::NameError> {
        self.release.proc_name(&self.at)
    }

    /// What a host checks of an order it receives, before anything is written: the release's
    /// env, volumes and limits as a swarm's are checked when it is defined, and the proc's name. A
    /// coordinator only sends valid orders; this keeps a bad one from becoming a proc.yaml whose
    /// error would name keys nobody wrote.
    pub fn check(&self) -> Result<(), String> {
        super::check_env_map("env", &self.release.env).map_err(|e| format!("the release's {e}"))?;
        super::check_volumes(&self.release.volumes).map_err(|e| format!("the release's {e}"))?;
        super::check_limits(&self.release.mem_limit, &self.release.memsw_limit)
            .map_err(|e| format!("the release's {e}"))?;
        let build = &self.release.build;
        for (key, md5) in [("build md5", &build.md5), ("image md5", &build.image.md5)] {
            crate::model::yaml::md5(key, Some(md5.clone()))
                .map_err(|e| format!("the release's {}: {}", e.key, e.problem))?;
        }
        for (what, artifact) in [("build", &build.artifact), ("image", &build.image.artifact)] {
            if let Some(a) = artifact.as_ref().filter(|a| !is_sha256(&a.sha256)) {
                return Err(format!("the {what}'s sha256 '{}' is not 64 lowercase hex digits", a.sha256));
            }
        }
        self.name().map(|_| ()).map_err(|e| format!("the proc's name: {e}"))
    }

    /// The proc.yaml of this order with its artifacts `at` the host's own locations: what the
    /// host's runner sets up and supervises (VR's keys, plus `build_sha256`/`image_sha256`).
    pub fn proc_yaml(&self, located: &Located) -> String {
        let (release, at) = (&self.release, &self.at);
        let env: Map<String, Value> =
            release.env.iter().map(|(k, v)| (k.clone(), Value::String(env_text(v)))).collect();
        let mut doc = Map::new();
        let mut put = |k: &str, v: Value| {
            doc.insert(k.to_string(), v);
        };
        put("app_name", release.app.clone().into());
        put("version", release.build.version.clone().into());
        put("config_name", at.config_name.clone().into());
        put("proc_name", at.proc_name.clone().into());
        put("release_hash", release.hash().into());
        put("host", at.address.clone().unwrap_or_else(|| at.host.clone()).into());
        put("port", at.port.into());
        put("user", release.run_as.clone().into());
        put("build_url", located.build_url.clone().into());
        put("build_md5", release.build.md5.clone().into());
        if let Some(a) = &release.build.artifact {
            put("build_sha256", a.sha256.clone().into());
        }
        put("image_name", release.build.image.name.clone().into());
        put("image_url", located.image_url.clone().into());
        put("image_md5", release.build.image.md5.clone().into());
        if let Some(a) = &release.build.image.artifact {
            put("image_sha256", a.sha256.clone().into());
        }
        put("env", Value::Object(env));
        put("settings", Value::Object(release.config.clone()));
        if !release.volumes.is_empty() {
            put("volumes", Value::from(release.volumes.clone()));
        }
        if let Some(m) = &release.mem_limit {
            put("mem_limit", m.clone().into());
        }
        if let Some(m) = &release.memsw_limit {
            put("memsw_limit", m.clone().into());
        }
        for (key, value) in release.vr_keys() {
            put(key, value.into());
        }
        serde_yaml_ng::to_string(&Value::Object(doc)).unwrap_or_default()
    }
}

/// An env value as the text the proc sees: strings as they are, anything else as JSON.
pub fn env_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::proc_data::ProcData;

    fn build() -> BuildRef {
        BuildRef {
            id: 7,
            version: "1.0-rc1".into(),
            url: String::new(),
            artifact: Some(ArtifactRef { sha256: "ab".repeat(32), size: 10 }),
            md5: "0123456789abcdef0123456789abcdef".into(),
            image: ImageRef {
                name: "base".into(),
                url: "/img.tar.gz".into(),
                md5: "f".repeat(32),
                artifact: None,
            },
            env: Map::from_iter([("A".to_string(), json!("build")), ("B".to_string(), json!("build"))]),
        }
    }

    fn swarm(v: Value) -> SwarmSpec {
        let mut base = json!({"app": "hello", "version": "1.0-rc1"});
        base.as_object_mut().unwrap().extend(v.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    fn ingredient(name: &str, config: Value, env: Value) -> IngredientSpec {
        serde_json::from_value(json!({"name": name, "config": config, "env": env})).unwrap()
    }

    #[test]
    fn merge_order_is_build_then_ingredients_in_listed_order_then_swarm() {
        let ings = [
            ingredient("zeta", json!({"db": "zeta", "x": 1}), json!({"A": "zeta"})),
            ingredient("alpha", json!({"db": "alpha"}), json!({"A": "alpha", "C": "alpha"})),
        ];
        let s = swarm(json!({"config": {"x": 2}, "env": {"C": "swarm"}}));
        let r = ReleaseSpec::merge("hello", build(), &s, &ings);
        // alpha comes after zeta in the swarm's list, so it wins although it sorts first.
        assert_eq!(Value::Object(r.config), json!({"db": "alpha", "x": 2}));
        assert_eq!(Value::Object(r.env), json!({"A": "alpha", "B": "build", "C": "swarm"}));
    }

    #[test]
    fn the_hash_changes_with_what_is_frozen_and_only_with_it() {
        let s = swarm(json!({}));
        let a = ReleaseSpec::merge("hello", build(), &s, &[]);
        assert_eq!(a.hash().len(), 8);
        assert_eq!(a.hash(), ReleaseSpec::merge("hello", build(), &s, &[]).hash());
        let renamed = swarm(json!({"config_name": "staging", "proc_name": "worker"}));
        assert_eq!(a.hash(), ReleaseSpec::merge("hello", build(), &renamed, &[]).hash());
        let changed = swarm(json!({"config": {"k": "v"}}));
        assert_ne!(a.hash(), ReleaseSpec::merge("hello", build(), &changed, &[]).hash());
        let mut new_image = build();
        new_image.image.md5 = "e".repeat(32);
        assert_ne!(a.hash(), ReleaseSpec::merge("hello", new_image, &s, &[]).hash());
        let limited = swarm(json!({"mem_limit": "256M"}));
        assert_ne!(a.hash(), ReleaseSpec::merge("hello", build(), &limited, &[]).hash());
    }

    /// web on h1, port 5007.
    fn web_at_h1() -> Placement {
        Placement {
            config_name: "prod".into(),
            proc_name: "web".into(),
            host: "h1".into(),
            port: 5007,
            address: None,
        }
    }

    #[test]
    fn vr_keys_join_the_hash_and_proc_yaml_only_off_their_defaults() {
        let plain = ReleaseSpec::merge("hello", build(), &swarm(json!({})), &[]);
        let spelled_out = swarm(json!({"network": "host", "seccomp": "default"}));
        assert_eq!(plain.hash(), ReleaseSpec::merge("hello", build(), &spelled_out, &[]).hash());
        let private = ReleaseSpec::merge("hello", build(), &swarm(json!({"network": "private"})), &[]);
        let unconfined = ReleaseSpec::merge("hello", build(), &swarm(json!({"seccomp": "unconfined"})), &[]);
        assert_ne!(plain.hash(), private.hash());
        assert_ne!(private.hash(), unconfined.hash());
        let at = web_at_h1();
        let located = Located { build_url: "/s".into(), image_url: "/i.tar.gz".into() };
        let yaml = ProcOrder { release: private, at: at.clone() }.proc_yaml(&located);
        let spec = ProcData::from_yaml(&yaml).unwrap().spec().unwrap();
        assert_eq!(spec.network, crate::model::network::Network::Private, "{yaml}");
        let yaml = ProcOrder { release: plain, at }.proc_yaml(&located);
        assert!(!yaml.contains("network") && !yaml.contains("seccomp"), "{yaml}");
        let wrong =
            serde_json::from_value::<SwarmSpec>(json!({"app": "a", "version": "1", "network": "bridge"}));
        assert!(wrong.unwrap_err().to_string().contains("private"));
    }

    #[test]
    fn a_host_refuses_an_order_whose_volume_is_not_a_pair() {
        let mut r = ReleaseSpec::merge("hello", build(), &swarm(json!({})), &[]);
        r.volumes = vec![vec!["/srv/data".into()]];
        let e = ProcOrder { release: r, at: web_at_h1() }.check().unwrap_err();
        assert!(e.contains("volume") && e.contains("[host_path, container_path]"), "{e}");
    }

    #[test]
    fn a_host_refuses_an_order_whose_env_a_process_could_not_have() {
        let mut r = ReleaseSpec::merge("hello", build(), &swarm(json!({})), &[]);
        r.env.insert(String::new(), json!("x"));
        let e = ProcOrder { release: r, at: web_at_h1() }.check().unwrap_err();
        assert!(e.contains("not a valid variable name"), "{e}");
    }

    #[test]
    fn a_host_refuses_an_order_whose_artifact_is_not_named_by_a_sha256() {
        let mut b = build();
        b.image.artifact = Some(ArtifactRef { sha256: format!("{}[[", "0".repeat(62)), size: 1 });
        let r = ReleaseSpec::merge("hello", b, &swarm(json!({})), &[]);
        let e = ProcOrder { release: r, at: web_at_h1() }.check().unwrap_err();
        assert!(e.contains("image's sha256"), "{e}");
        assert!(is_sha256(&"ab".repeat(32)) && !is_sha256(&"AB".repeat(32)) && !is_sha256("ab"));
    }

    #[test]
    fn proc_yaml_reads_back_as_the_proc_it_describes() {
        let s = swarm(json!({"env": {"N": 3}, "config": {"k": "v"}, "volumes": [["/srv", "/data", "ro"]]}));
        let r = ReleaseSpec::merge("hello", build(), &s, &[]);
        let at = web_at_h1();
        let order = ProcOrder { release: r.clone(), at };
        let located = Located { build_url: "/store/slug".into(), image_url: "/img.tar.gz".into() };
        let yaml = order.proc_yaml(&located);
        let data = ProcData::from_yaml(&yaml).unwrap();
        assert!(data.unknown_keys.is_empty(), "{:?}", data.unknown_keys);
        assert!(yaml.contains(&format!("build_sha256: {}", "ab".repeat(32))), "{yaml}");
        let spec = data.spec().unwrap();
        assert_eq!(order.name().unwrap(), spec.name);
        assert_eq!(spec.name.to_string(), format!("hello-1.0-rc1-prod-{}-web-5007", r.hash()));
        assert!(spec.env.contains(&("N".to_string(), "3".to_string())), "{:?}", spec.env);
        assert_eq!(spec.volumes.len(), 1);
        assert!(spec.volumes[0].read_only);
    }
}
