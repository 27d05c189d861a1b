//! Fuzz target: the JSON-RPC params vrd takes, positional as the client sends them. The first
//! byte picks a method's params tuple, the rest is the JSON. Definitions (`objects.create`) are
//! also validated and must round-trip; a proc order from a coordinator (`host.deploy`) must
//! become a proc.yaml the host's runner reads back under the same name.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use vr::api::host::{PoolChange, ProcAction};
use vr::api::{Attach, BuildFile, ImageFile, Kind, ProcFile, SwarmChanges};
use vr::model::deploy::release::{ArtifactRef, Located, ProcOrder};
use vr::model::deploy::Definition;
use vr::model::proc_data::ProcData;

fn parse<T: serde::de::DeserializeOwned>(json: &[u8]) -> Option<T> {
    serde_json::from_slice(json).ok()
}

fn definition(kind: Kind, spec: Value) {
    let Ok(def) = Definition::from_value(kind, spec) else { return };
    let stored = def.to_value();
    let again = Definition::from_value(kind, stored.clone())
        .unwrap_or_else(|e| panic!("a stored {kind} is refused when read back: {e}\n{stored}"));
    assert_eq!(again.to_value(), stored, "a stored {kind} changed when read back");
}

fn order(order: ProcOrder) {
    // A host refuses what does not pass (services/hosts/local.rs); the rest must round-trip.
    if order.check().is_err() {
        return;
    }
    let located =
        Located { build_url: "/store/build.tar.gz".into(), image_url: "/store/image.tar.gz".into() };
    let yaml = order.proc_yaml(&located);
    let data = ProcData::from_yaml(&yaml)
        .unwrap_or_else(|e| panic!("the host cannot read its proc.yaml: {e}\n{yaml}"));
    if let (Ok(name), Ok(spec)) = (order.name(), data.spec()) {
        assert_eq!(spec.name, name, "the proc.yaml names another proc\n{yaml}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, json)) = data.split_first() else { return };
    match pick % 16 {
        0 => drop(parse::<(ProcFile,)>(json)),
        1 => drop(parse::<(ProcFile, Attach)>(json)),
        2 => drop(parse::<(ProcFile, String)>(json)),
        3 => drop(parse::<(ImageFile, Attach, Option<String>)>(json)),
        4 => drop(parse::<(BuildFile, Attach)>(json)),
        5 => {
            if let Some((kind, spec)) = parse::<(Kind, Value)>(json) {
                definition(kind, spec);
            }
        }
        6 => drop(parse::<(String, SwarmChanges, Option<String>, bool)>(json)),
        7 => drop(parse::<(u64, String, u16, String, String)>(json)),
        8 => drop(parse::<(String, Option<String>, Option<usize>)>(json)),
        9 => drop(parse::<(bool, Option<u64>, Option<usize>)>(json)),
        10 => drop(parse::<(ArtifactRef,)>(json)),
        11 => {
            if let Some((o,)) = parse::<(ProcOrder,)>(json) {
                order(o);
            }
        }
        12 => drop(parse::<(PoolChange,)>(json)),
        13 => drop(parse::<(String, ProcAction)>(json)),
        14 => drop(parse::<(Option<u64>, usize)>(json)),
        _ => drop(parse::<(Option<String>, u64, usize)>(json)),
    }
});
