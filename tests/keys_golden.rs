//! Golden node keys: fixed ingredients must give these fixed keys, so any
//! change to keying (encoding, field order, domain prefix, hash) shows up
//! as a deliberate edit of this file, which must come with a bump of
//! `KEY_SCHEMA` (old entries would otherwise be served for new meanings).
//! Each ingredient (mode, implementation version, role, config value,
//! input path and content, upstream node and digest) moves the key.

use admf::key::{
    FileIngredient, Ingredients, KEY_SCHEMA, UpstreamIngredient, canonical, file_ingredients,
};
use admf::phases::Role;
use admf::stat_cache::StatCache;
use serde_json::json;

fn ingredients() -> Ingredients {
    Ingredients {
        schema: KEY_SCHEMA,
        mode: "backtest".into(),
        version: "3".into(),
        role: Role::Single.kind().into(),
        config: canonical(
            &json!({"strategy": {"type": "momentum", "parameters": {"lookback": 20}}, "costs": {"fee": 0.001}}),
        ),
        inputs: vec![FileIngredient {
            path: "data/SPY_D.csv".into(),
            blake3: "1".repeat(64),
        }],
        upstream: vec![UpstreamIngredient {
            node: "sweep".into(),
            digest: "2".repeat(64),
        }],
        platform: None,
        env: Default::default(),
    }
}

#[test]
fn the_schema_is_the_one_these_goldens_were_taken_at() {
    assert_eq!(KEY_SCHEMA, 3, "a new schema needs new golden keys below");
}

#[test]
fn golden_keys() {
    let mut trial = ingredients();
    trial.role = (Role::Trial {
        index: 3,
        name: "momentum_lookback=20".into(),
    })
    .kind()
    .into();
    let mut bare = ingredients();
    bare.config = json!({});
    bare.inputs.clear();
    bare.upstream.clear();
    for (what, i, key) in [
        (
            "backtest",
            ingredients(),
            "baad97f834b19f26f68359b6ade462cd9933014e47859d30a48eb40661bb012f",
        ),
        (
            "trial",
            trial,
            "bdeaca92f109e3bc22ddbbf49cf1f8830828d8a4e02289c8b33c1054b5d1406c",
        ),
        (
            "bare",
            bare,
            "5cff9b71a2c1c12e24e71a8c5167493ea6044a63f7d2ea36f5396da272ecb113",
        ),
    ] {
        assert_eq!(i.key(), key, "{what}: {i:?}");
    }
}

/// The key is blake3 over a domain line and the JSON of the ingredients
/// with fields in declaration order and the config's maps sorted: checked
/// here with blake3 itself on hand-written text.
#[test]
fn the_key_is_blake3_of_the_documented_encoding() {
    let text = concat!(
        r#"{"schema":3,"mode":"backtest","version":"3","role":"single","#,
        r#""config":{"costs":{"fee":0.001},"strategy":{"parameters":{"lookback":20},"type":"momentum"}},"#,
        r#""inputs":[{"path":"data/SPY_D.csv","blake3":"1111111111111111111111111111111111111111111111111111111111111111"}],"#,
        r#""upstream":[{"node":"sweep","digest":"2222222222222222222222222222222222222222222222222222222222222222"}]}"#
    );
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"admf-node-key\n");
    hasher.update(text.as_bytes());
    assert_eq!(ingredients().key(), hasher.finalize().to_hex().to_string());
    // The manifest's copy of the ingredients (what `admf explain` diffs)
    // is the same document.
    let parsed: serde_json::Value = serde_json::from_str(text).unwrap();
    assert_eq!(ingredients().to_value(), parsed);
}

/// A command's key adds the platform and the passed variables after the
/// upstream list; a key without them is encoded exactly as before.
#[test]
fn platform_and_passed_variables_extend_the_documented_encoding() {
    let text = concat!(
        r#"{"schema":3,"mode":"command","version":"command-2","role":"single","#,
        r#""config":{"pass_env":["SEED"],"run":"echo hi"},"inputs":[],"upstream":[],"#,
        r#""platform":"linux-x86_64","env":{"SEED":null}}"#
    );
    let i = Ingredients {
        mode: "command".into(),
        version: "command-2".into(),
        config: canonical(&json!({"run": "echo hi", "pass_env": ["SEED"]})),
        inputs: Vec::new(),
        upstream: Vec::new(),
        platform: Some("linux-x86_64".into()),
        env: [("SEED".to_string(), None)].into(),
        ..ingredients()
    };
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"admf-node-key\n");
    hasher.update(text.as_bytes());
    assert_eq!(i.key(), hasher.finalize().to_hex().to_string());
}

#[test]
fn roles_have_distinct_names() {
    let names = [
        Role::Single.kind(),
        (Role::Trial {
            index: 0,
            name: "t".into(),
        })
        .kind(),
        Role::Gather { trials: 2 }.kind(),
    ];
    assert_eq!(names, ["single", "trial", "gather"]);
    // A trial's index and name are not ingredients (adding a value in
    // front of a grid must not rerun the existing trials).
    assert_eq!(
        (Role::Trial {
            index: 7,
            name: "other".into()
        })
        .kind(),
        "trial"
    );
}

#[test]
fn every_ingredient_moves_the_key() {
    let base = ingredients().key();
    type Change = fn(&mut Ingredients);
    let changes: [(&str, Change); 14] = [
        ("mode", |i| i.mode = "signal_generation".into()),
        ("version", |i| i.version = "4".into()),
        ("role trial", |i| {
            i.role = (Role::Trial {
                index: 0,
                name: "t".into(),
            })
            .kind()
            .into()
        }),
        ("role gather", |i| {
            i.role = Role::Gather { trials: 2 }.kind().into()
        }),
        ("config value", |i| {
            i.config["costs"]["fee"] = json!(0.002);
        }),
        ("config key", |i| {
            i.config["costs"] = json!({"slippage": 0.001});
        }),
        ("input content", |i| i.inputs[0].blake3 = "3".repeat(64)),
        ("input path", |i| i.inputs[0].path = "data/QQQ_D.csv".into()),
        ("upstream digest", |i| i.upstream[0].digest = "4".repeat(64)),
        ("upstream node", |i| i.upstream[0].node = "other".into()),
        ("schema", |i| i.schema += 1),
        ("platform", |i| i.platform = Some("linux-x86_64".into())),
        ("passed variable", |i| {
            i.env.insert("SEED".into(), None);
        }),
        ("passed value", |i| {
            i.env.insert("SEED".into(), Some("5".repeat(64)));
        }),
    ];
    let mut seen = vec![base];
    for (what, change) in changes {
        let mut i = ingredients();
        change(&mut i);
        let key = i.key();
        assert!(
            !seen.contains(&key),
            "{what} left the key unchanged or collided"
        );
        seen.push(key);
    }
}

#[test]
fn input_content_reaches_the_key_through_the_stat_cache() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.csv");
    std::fs::write(&file, "a,b\n1,2\n").unwrap();
    let stats = StatCache::in_memory();
    let first = file_ingredients(std::slice::from_ref(&file), dir.path(), &stats).unwrap();
    assert_eq!(
        first,
        [FileIngredient {
            path: "in.csv".into(),
            blake3: blake3::hash(b"a,b\n1,2\n").to_hex().to_string(),
        }]
    );
    std::fs::write(&file, "a,b\n1,3\n").unwrap();
    let second = file_ingredients(
        std::slice::from_ref(&file),
        dir.path(),
        &StatCache::in_memory(),
    )
    .unwrap();
    let key = |inputs: Vec<FileIngredient>| {
        Ingredients {
            inputs,
            ..ingredients()
        }
        .key()
    };
    assert_ne!(key(first), key(second));
}
