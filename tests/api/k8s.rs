//! The deployment artefacts against Kubernetes and against the app itself: every manifest
//! of `deploy/k8s/` passes the Kubernetes OpenAPI schemas (`kubernetes-validate`, strict: an
//! unknown field fails, and the validator is shown to reject a broken Deployment), the
//! custom resources (CloudNativePG `Cluster`, `Kustomization`) have the shape their tools
//! expect, and the manifests agree with the app: the probes hit real routes of a live app,
//! ports and selectors line up, every Secret and ConfigMap key the pods read exists, every
//! `CONCIERGE__…` variable names a setting, the ConfigMap and the Secret load through the real
//! `concierge validate`, and shutdown outlasts the drain. `deploy/docker-compose.yml` is
//! checked the same way: two nodes on PostgreSQL behind a WebSocket-aware nginx balancer.
//!
//! The validator comes from `CONCIERGE_KUBERNETES_VALIDATE` (scripts/test installs
//! kubernetes-validate 1.37.0 into a venv and sets it). Without it the schema tests are skipped
//! with the reason printed, unless `CONCIERGE_REQUIRE_KUBERNETES_VALIDATE=1` (set by
//! scripts/test when the install worked): then they fail.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use concierge::config::{Overrides, SecuritySettings, Settings, DEFAULT_TOML};
use secrecy::SecretString;
use serde::Deserialize;
use serde_norway::Value;

use crate::helpers::{concierge, project_root, spawn_app};

const K8S: &str = "deploy/k8s";
const COMPOSE: &str = "deploy/docker-compose.yml";
const DOCKERFILE: &str = "deploy/Dockerfile";
/// Where the ConfigMap's file is mounted in the pods (and given with `--config`).
const CONFIG_PATH: &str = "/etc/concierge/concierge.toml";
/// Applied on its own before the rest (its pod template cannot change in place), so not in
/// the kustomization.
const MIGRATE_JOB: &str = "migrate-job.yaml";
/// Resources with no schema in kubernetes-validate: checked structurally here.
const CUSTOM: [(&str, &str); 2] = [
    ("postgresql.cnpg.io/v1", "Cluster"),
    ("kustomize.config.k8s.io/v1beta1", "Kustomization"),
];
/// Settings that are maps: any key below them is a setting (`[security.data_keys]` by id).
const MAP_SETTINGS: [&str; 1] = ["security.data_keys"];

/// One YAML document of a manifest file.
struct Doc {
    file: String,
    value: Value,
}

impl Doc {
    fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or_default()
    }

    fn api_version(&self) -> &str {
        self.value["apiVersion"].as_str().unwrap_or_default()
    }

    fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or_default()
    }

    fn is_custom(&self) -> bool {
        CUSTOM.contains(&(self.api_version(), self.kind()))
    }
}

/// Every document of every `deploy/k8s/*.yaml`, in file order.
fn manifests() -> Vec<Doc> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(project_root().join(K8S))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in {K8S}");
    let mut docs = Vec::new();
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        for de in serde_norway::Deserializer::from_str(&text) {
            let value = Value::deserialize(de).unwrap_or_else(|e| panic!("{file}: {e}"));
            if !value.is_null() {
                docs.push(Doc {
                    file: file.clone(),
                    value,
                });
            }
        }
    }
    docs
}

/// The one document of this kind and name.
fn find<'a>(docs: &'a [Doc], kind: &str, name: &str) -> &'a Value {
    let found: Vec<&Doc> = docs
        .iter()
        .filter(|d| d.kind() == kind && d.name() == name)
        .collect();
    assert_eq!(found.len(), 1, "expected one {kind} {name} in {K8S}");
    &found[0].value
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, got {v:?}"))
}

fn int_of(v: &Value, what: &str) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("{what}: expected a non-negative integer, got {v:?}"))
}

fn seq_of<'a>(v: &'a Value, what: &str) -> &'a Vec<Value> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("{what}: expected a list, got {v:?}"))
}

/// The string map of a YAML mapping (labels, selectors, annotations, stringData).
fn string_map(v: &Value, what: &str) -> BTreeMap<String, String> {
    v.as_mapping()
        .unwrap_or_else(|| panic!("{what}: expected a mapping, got {v:?}"))
        .iter()
        .map(|(k, v)| {
            let value = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => panic!("{what}: {k:?} is not a scalar: {other:?}"),
            };
            (str_of(k, what).to_string(), value)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// kubernetes-validate

/// The kubernetes-validate executable, or None (the test is skipped, saying why) unless
/// `CONCIERGE_REQUIRE_KUBERNETES_VALIDATE=1`: then a missing validator fails the test.
fn validator(test: &str) -> Option<PathBuf> {
    let given = std::env::var_os("CONCIERGE_KUBERNETES_VALIDATE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let why = match &given {
        Some(p) if p.is_file() => return Some(p.clone()),
        Some(p) => format!(
            "CONCIERGE_KUBERNETES_VALIDATE={} is not a file",
            p.display()
        ),
        None => "CONCIERGE_KUBERNETES_VALIDATE is not set".to_string(),
    };
    if std::env::var("CONCIERGE_REQUIRE_KUBERNETES_VALIDATE").as_deref() == Ok("1") {
        panic!("{test}: kubernetes-validate required (CONCIERGE_REQUIRE_KUBERNETES_VALIDATE=1) but {why}");
    }
    eprintln!(
        "skipped {test}: {why} (run scripts/test, which installs kubernetes-validate 1.37.0)"
    );
    None
}

/// Runs the validator on one file, strictly (unknown fields are errors); its exit status and
/// everything it printed.
fn validate(validator: &Path, file: &Path) -> (bool, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(validator)
        .args(["--strict", "--kubernetes-version", "1.37.0"])
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", validator.display()));
    let mut text = String::from_utf8_lossy(&stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&stderr));
    (status.success(), text)
}

#[test]
fn every_manifest_passes_the_kubernetes_schemas_strictly() {
    let Some(validator) = validator("every_manifest_passes_the_kubernetes_schemas_strictly") else {
        return;
    };
    let docs = manifests();
    let files: BTreeSet<&str> = docs.iter().map(|d| d.file.as_str()).collect();
    for file in files {
        let in_file: Vec<&Doc> = docs.iter().filter(|d| d.file == file).collect();
        if in_file.iter().all(|d| d.is_custom()) {
            continue; // no bundled schema: the_custom_resources_have_the_shape_their_tools_read
        }
        assert!(
            in_file.iter().all(|d| !d.is_custom()),
            "{file}: keep custom resources in files of their own"
        );
        let (ok, out) = validate(&validator, &project_root().join(K8S).join(file));
        assert!(
            ok,
            "{file} does not pass the Kubernetes 1.37 schemas:\n{out}"
        );
        // A kind the validator has no schema for passes with a warning: each document
        // must really have been checked.
        assert!(
            !out.contains("Couldn't find schema"),
            "{file}: no schema for a resource:\n{out}"
        );
        assert_eq!(
            out.matches("passed for resource").count(),
            in_file.len(),
            "{file}: every document checked:\n{out}"
        );
    }
}

#[test]
fn the_validator_rejects_a_deployment_with_an_unknown_field_or_a_wrong_type() {
    let Some(validator) =
        validator("the_validator_rejects_a_deployment_with_an_unknown_field_or_a_wrong_type")
    else {
        return;
    };
    let docs = manifests();
    let deployment = find(&docs, "Deployment", "concierge").clone();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, v: &Value| {
        let path = dir.path().join(name);
        std::fs::write(&path, serde_norway::to_string(v).unwrap()).unwrap();
        path
    };

    // The copy as it is passes: what fails below fails for the change alone.
    let (ok, out) = validate(&validator, &write("same.yaml", &deployment));
    assert!(ok, "the unchanged Deployment should pass:\n{out}");

    let mut unknown = deployment.clone();
    unknown["spec"]["template"]["spec"]["containers"][0]
        .as_mapping_mut()
        .unwrap()
        .insert("readinesProbe".into(), Value::Mapping(Default::default()));
    let (ok, out) = validate(&validator, &write("unknown.yaml", &unknown));
    assert!(!ok, "a misspelt field must be refused:\n{out}");
    assert!(out.contains("readinesProbe"), "{out}");

    let mut wrong_type = deployment;
    wrong_type["spec"]["replicas"] = Value::String("two".into());
    let (ok, out) = validate(&validator, &write("wrong-type.yaml", &wrong_type));
    assert!(!ok, "replicas: \"two\" must be refused:\n{out}");
    assert!(out.contains("spec.replicas"), "{out}");
}

#[test]
fn the_custom_resources_have_the_shape_their_tools_read() {
    let docs = manifests();
    let kustomization = find(&docs, "Kustomization", "");
    // Everything but the kustomization itself and the migrate Job is applied with -k.
    let listed: BTreeSet<String> = seq_of(&kustomization["resources"], "resources")
        .iter()
        .map(|r| str_of(r, "resources[]").to_string())
        .collect();
    let expected: BTreeSet<String> = docs
        .iter()
        .map(|d| d.file.clone())
        .filter(|f| f != "kustomization.yaml" && f != MIGRATE_JOB)
        .collect();
    assert_eq!(listed, expected, "kustomization.yaml resources");
    for image in seq_of(&kustomization["images"], "images") {
        str_of(&image["name"], "images[].name");
        str_of(&image["newName"], "images[].newName");
    }

    let cluster = find(&docs, "Cluster", "concierge-db");
    assert_eq!(cluster["apiVersion"], Value::from("postgresql.cnpg.io/v1"));
    let spec = &cluster["spec"];
    assert!(
        int_of(&spec["instances"], "spec.instances") >= 2,
        "a primary and a standby at least"
    );
    let size = str_of(&spec["storage"]["size"], "spec.storage.size");
    assert!(
        regex::Regex::new(r"^[0-9]+(Mi|Gi|Ti)$")
            .unwrap()
            .is_match(size),
        "storage size {size}"
    );
    assert_eq!(
        str_of(
            &spec["bootstrap"]["initdb"]["database"],
            "bootstrap.initdb.database"
        ),
        "concierge"
    );
    str_of(
        &spec["bootstrap"]["initdb"]["owner"],
        "bootstrap.initdb.owner",
    );
    // CloudNativePG takes PostgreSQL parameters as strings only.
    for (k, v) in spec["postgresql"]["parameters"].as_mapping().unwrap() {
        assert!(
            v.is_string(),
            "postgresql.parameters.{k:?} must be a string"
        );
    }
    // The database URL of the Secret points at the operator's read-write Service.
    let secret = secret_data(&docs);
    let url = url::Url::parse(&secret["database-url"]).unwrap();
    assert_eq!(url.host_str(), Some("concierge-db-rw"));
    assert_eq!(url.path(), "/concierge");
}

// ---------------------------------------------------------------------------------------
// The manifests against each other and against the app

/// The Secret's values by key.
fn secret_data(docs: &[Doc]) -> BTreeMap<String, String> {
    string_map(
        &find(docs, "Secret", "concierge-secrets")["stringData"],
        "stringData",
    )
}

/// The ConfigMap's config file.
fn config_toml(docs: &[Doc]) -> String {
    let cm = find(docs, "ConfigMap", "concierge-config");
    str_of(&cm["data"]["concierge.toml"], "data.concierge.toml").to_string()
}

/// The settings the ConfigMap's file makes, through the real loader (no environment).
fn configmap_settings(docs: &[Doc], dir: &Path) -> Settings {
    let file = dir.join("concierge.toml");
    std::fs::write(&file, config_toml(docs)).unwrap();
    Settings::load_with_env(
        &Overrides {
            config_file: Some(file),
            ..Overrides::default()
        },
        false,
    )
    .expect("the ConfigMap's concierge.toml loads")
}

/// The pod spec of a Deployment or a Job.
fn pod_spec(workload: &Value) -> &Value {
    &workload["spec"]["template"]["spec"]
}

/// The one container of a pod.
fn container(workload: &Value) -> &Value {
    let containers = seq_of(&pod_spec(workload)["containers"], "containers");
    assert_eq!(containers.len(), 1, "one container");
    &containers[0]
}

/// The environment of a container: values given inline, and the Secret keys of the others
/// (with whether they are optional).
struct Env {
    plain: BTreeMap<String, String>,
    from_secret: BTreeMap<String, (String, String, bool)>,
}

fn env_of(container: &Value) -> Env {
    let mut env = Env {
        plain: BTreeMap::new(),
        from_secret: BTreeMap::new(),
    };
    for e in seq_of(&container["env"], "env") {
        let name = str_of(&e["name"], "env[].name").to_string();
        if let Some(value) = e["value"].as_str() {
            env.plain.insert(name, value.to_string());
        } else {
            let r = &e["valueFrom"]["secretKeyRef"];
            let secret = str_of(&r["name"], "secretKeyRef.name").to_string();
            let key = str_of(&r["key"], "secretKeyRef.key").to_string();
            let optional = r["optional"].as_bool().unwrap_or(false);
            env.from_secret.insert(name, (secret, key, optional));
        }
    }
    env
}

/// The workloads that run the image: the Deployment and the migrate Job.
fn workloads(docs: &[Doc]) -> Vec<(&'static str, &Value)> {
    vec![
        (
            "Deployment concierge",
            find(docs, "Deployment", "concierge"),
        ),
        (
            "Job concierge-migrate",
            find(docs, "Job", "concierge-migrate"),
        ),
    ]
}

/// Whether `CONCIERGE__A__B` names a setting: the path (lower case, as the loader reads it)
/// is a key of the defaults, or lies below a map setting.
fn names_a_setting(defaults: &toml::Table, var: &str) -> bool {
    let Some(rest) = var.strip_prefix("CONCIERGE__") else {
        return false;
    };
    let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
    if path.iter().any(String::is_empty) {
        return false;
    }
    if MAP_SETTINGS.iter().any(|m| {
        let map: Vec<&str> = m.split('.').collect();
        path.len() == map.len() + 1 && path.iter().zip(&map).all(|(a, b)| a == b)
    }) {
        return true;
    }
    let mut table = defaults;
    for (i, key) in path.iter().enumerate() {
        match table.get(key) {
            Some(toml::Value::Table(t)) if i + 1 < path.len() => table = t,
            Some(v) if i + 1 == path.len() => return !v.is_table(),
            _ => return false,
        }
    }
    false
}

/// `concierge --config FILE validate` with exactly this environment (plus PATH): the
/// configuration as a pod would load it, and every data file.
fn concierge_validate(config: Option<&Path>, env: &BTreeMap<String, String>) -> Output {
    let mut cmd = concierge();
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("CONCIERGE") {
            cmd.env_remove(k);
        }
    }
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    cmd.arg("validate").envs(env);
    cmd.output().unwrap()
}

#[tokio::test]
async fn the_probes_hit_real_routes_and_the_ports_line_up() {
    let docs = manifests();
    let deployment = find(&docs, "Deployment", "concierge");
    let c = container(deployment);
    let ports: BTreeMap<String, u64> = seq_of(&c["ports"], "ports")
        .iter()
        .map(|p| {
            (
                str_of(&p["name"], "ports[].name").to_string(),
                int_of(&p["containerPort"], "containerPort"),
            )
        })
        .collect();
    let port_of = |v: &Value, what: &str| -> u64 {
        match v {
            Value::String(name) => *ports
                .get(name)
                .unwrap_or_else(|| panic!("{what}: no container port named {name}")),
            other => int_of(other, what),
        }
    };

    // The container listens where the ConfigMap tells the node to.
    let dir = tempfile::tempdir().unwrap();
    let settings = configmap_settings(&docs, dir.path());
    assert_eq!(
        settings.listen_addr().ip().to_string(),
        "0.0.0.0",
        "the kubelet and the Service reach the pod's address, not its loopback"
    );
    let listen = u64::from(settings.listen_addr().port());
    assert_eq!(ports.values().copied().collect::<Vec<_>>(), vec![listen]);

    // The probes: the right route each, on the container's port, answered 200 by a live app.
    let app = spawn_app().await;
    for (probe, path) in [
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/healthz"),
        ("startupProbe", "/healthz"),
    ] {
        let get = &c[probe]["httpGet"];
        assert_eq!(str_of(&get["path"], probe), path, "{probe}");
        assert_eq!(port_of(&get["port"], probe), listen, "{probe} port");
        let res = reqwest::get(app.http(path)).await.unwrap();
        assert_eq!(res.status(), 200, "{probe}: GET {path}");
    }

    // Service → container port; Ingress → Service port.
    let service = find(&docs, "Service", "concierge");
    let sports = seq_of(&service["spec"]["ports"], "Service ports");
    assert_eq!(sports.len(), 1);
    assert_eq!(
        port_of(&sports[0]["targetPort"], "Service targetPort"),
        listen
    );
    let service_port_name = str_of(&sports[0]["name"], "Service port name");
    let service_port = int_of(&sports[0]["port"], "Service port");
    for ingress in docs.iter().filter(|d| d.kind() == "Ingress") {
        for rule in seq_of(&ingress.value["spec"]["rules"], "rules") {
            for p in seq_of(&rule["http"]["paths"], "paths") {
                let backend = &p["backend"]["service"];
                assert_eq!(
                    str_of(&backend["name"], "backend"),
                    "concierge",
                    "{}",
                    ingress.name()
                );
                let port = &backend["port"];
                assert!(
                    port["name"].as_str() == Some(service_port_name)
                        || port["number"].as_u64() == Some(service_port),
                    "{}: backend port {port:?}",
                    ingress.name()
                );
            }
        }
    }

    // Selectors pick the Deployment's pods.
    let labels = string_map(
        &deployment["spec"]["template"]["metadata"]["labels"],
        "pod labels",
    );
    let selects = |selector: &Value, what: &str| {
        for (k, v) in string_map(selector, what) {
            assert_eq!(labels.get(&k), Some(&v), "{what} {k}={v}");
        }
    };
    selects(
        &deployment["spec"]["selector"]["matchLabels"],
        "Deployment selector",
    );
    selects(&service["spec"]["selector"], "Service selector");
    let pdb = find(&docs, "PodDisruptionBudget", "concierge");
    selects(&pdb["spec"]["selector"]["matchLabels"], "PDB selector");
    assert_eq!(int_of(&pdb["spec"]["minAvailable"], "minAvailable"), 1);
    let hpa = find(&docs, "HorizontalPodAutoscaler", "concierge");
    assert_eq!(hpa["apiVersion"], Value::from("autoscaling/v2"));
    assert_eq!(
        hpa["spec"]["scaleTargetRef"]["kind"],
        Value::from("Deployment")
    );
    assert_eq!(
        hpa["spec"]["scaleTargetRef"]["name"],
        Value::from("concierge")
    );
    assert!(seq_of(&hpa["spec"]["metrics"], "metrics")
        .iter()
        .any(|m| m["resource"]["name"] == "cpu"));
    assert!(int_of(&hpa["spec"]["minReplicas"], "minReplicas") >= 2);
    assert!(int_of(&deployment["spec"]["replicas"], "replicas") >= 2);
}

#[test]
fn the_pods_read_only_keys_that_exist_and_variables_that_name_settings() {
    let docs = manifests();
    let secret = secret_data(&docs);
    let defaults: toml::Table = toml::from_str(DEFAULT_TOML).unwrap();
    let config_map = find(&docs, "ConfigMap", "concierge-config");
    let cm_keys = string_map(&config_map["data"], "ConfigMap data");
    for (what, workload) in workloads(&docs) {
        let c = container(workload);
        let env = env_of(c);
        for (var, (name, key, optional)) in &env.from_secret {
            assert_eq!(name, "concierge-secrets", "{what}: {var}");
            assert!(
                *optional || secret.contains_key(key),
                "{what}: {var} reads key {key}, which the Secret lacks"
            );
        }
        for var in env.plain.keys().chain(env.from_secret.keys()) {
            assert!(
                names_a_setting(&defaults, var),
                "{what}: {var} names no setting of deploy/config/default.toml"
            );
        }
        for v in seq_of(&pod_spec(workload)["volumes"], "volumes") {
            if v["configMap"].is_mapping() {
                assert_eq!(
                    v["configMap"]["name"],
                    Value::from("concierge-config"),
                    "{what}"
                );
                for item in seq_of(&v["configMap"]["items"], "items") {
                    let key = str_of(&item["key"], "items[].key");
                    assert!(cm_keys.contains_key(key), "{what}: ConfigMap key {key}");
                }
            }
        }
        // The file given with --config is the ConfigMap's, mounted there.
        let args: Vec<&str> = seq_of(&c["args"], "args")
            .iter()
            .map(|a| str_of(a, "args[]"))
            .collect();
        let at = args
            .iter()
            .position(|a| *a == "--config")
            .expect("--config");
        assert_eq!(args[at + 1], CONFIG_PATH, "{what}");
        assert!(
            seq_of(&c["volumeMounts"], "volumeMounts")
                .iter()
                .any(|m| { m["mountPath"] == CONFIG_PATH && m["subPath"] == "concierge.toml" }),
            "{what}: {CONFIG_PATH} mounted from the ConfigMap"
        );
    }
    // The names the pods read and the Secret's keys are one set (no forgotten key).
    let used: BTreeSet<String> = workloads(&docs)
        .iter()
        .flat_map(|(_, w)| env_of(container(w)).from_secret.into_values())
        .map(|(_, key, _)| key)
        .collect();
    assert_eq!(
        used,
        secret.keys().cloned().collect::<BTreeSet<_>>(),
        "Secret keys"
    );
    // The check itself tells a setting from a misspelling.
    assert!(names_a_setting(&defaults, "CONCIERGE__DATABASE__URL"));
    assert!(names_a_setting(
        &defaults,
        "CONCIERGE__SECURITY__DATA_KEYS__K9"
    ));
    assert!(!names_a_setting(&defaults, "CONCIERGE__DATABASE__URI"));
    assert!(!names_a_setting(&defaults, "CONCIERGE__DATABASE"));
    assert!(!names_a_setting(&defaults, "CONCIERGE_DATABASE__URL"));
}

#[test]
fn the_configmap_and_the_secret_load_through_concierge_validate() {
    let docs = manifests();
    let dir = tempfile::tempdir().unwrap();
    let settings = configmap_settings(&docs, dir.path());
    let secret = secret_data(&docs);
    let deployment = find(&docs, "Deployment", "concierge");
    let env = env_of(container(deployment));
    let mut vars: BTreeMap<String, String> = env.plain.clone();
    for (var, (_, key, _)) in &env.from_secret {
        vars.insert(var.clone(), secret[key].clone());
    }

    // The container's command line parses with the real binary (entrypoint + args).
    let dockerfile = std::fs::read_to_string(project_root().join(DOCKERFILE)).unwrap();
    let entrypoint: Vec<String> = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .map(|j| serde_json::from_str(j).unwrap())
        .expect("ENTRYPOINT");
    assert_eq!(entrypoint[0], "concierge");
    for (what, workload) in workloads(&docs) {
        let args: Vec<String> = seq_of(&container(workload)["args"], "args")
            .iter()
            .map(|a| str_of(a, "args[]").to_string())
            .collect();
        let out = concierge()
            .args(&entrypoint[1..])
            .args(&args)
            .arg("--help")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{what}: `{} {}` does not parse: {}",
            entrypoint.join(" "),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The ConfigMap's file with the Secret's values in the pod's variables: valid.
    let file = dir.path().join("concierge.toml");
    let out = concierge_validate(Some(&file), &vars);
    assert!(
        out.status.success(),
        "concierge validate with the manifests' configuration: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // ...and the variables are really read: a bad database URL in them is refused.
    let mut bad = vars.clone();
    bad.insert(
        "CONCIERGE__DATABASE__URL".into(),
        "mysql://db/concierge".into(),
    );
    let out = concierge_validate(Some(&file), &bad);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("database.url"));

    // The Secret's placeholders are refused as keys: nobody runs on them by mistake.
    for v in ["data-key-k1", "lookup-secret", "audit-anchor-secret"] {
        assert!(
            secret[v].contains("REPLACE-ME"),
            "{v} is marked a placeholder"
        );
    }
    let placeholder = SecuritySettings {
        data_keys: BTreeMap::from([(
            secret["active-key"].clone(),
            SecretString::from(secret["data-key-k1"].clone()),
        )]),
        active_key: secret["active-key"].clone(),
        lookup_secret: SecretString::from(secret["lookup-secret"].clone()),
        keys_file: String::new(),
    };
    let url = SecretString::from(secret["database-url"].clone());
    assert!(placeholder.keyring(&url).is_err());
    assert_eq!(
        vars.get("CONCIERGE__SECURITY__ACTIVE_KEY")
            .map(String::as_str),
        Some("k1")
    );
    assert!(vars.contains_key("CONCIERGE__SECURITY__DATA_KEYS__K1"));

    // PostgreSQL has room for every node at the HPA's maximum, one more during a rolling
    // update, and the migrate Job, each with its pool and its LISTEN connection, plus the
    // superuser's reserve (3).
    let hpa = find(&docs, "HorizontalPodAutoscaler", "concierge");
    let max_pods = int_of(&hpa["spec"]["maxReplicas"], "maxReplicas")
        + int_of(
            &deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"],
            "maxSurge",
        )
        + 1;
    let cluster = find(&docs, "Cluster", "concierge-db");
    let pg_max: u64 = str_of(
        &cluster["spec"]["postgresql"]["parameters"]["max_connections"],
        "max_connections",
    )
    .parse()
    .unwrap();
    assert!(
        max_pods * (u64::from(settings.database.max_connections) + 1) + 3 <= pg_max,
        "{max_pods} pods x {} + 1 connections do not fit in max_connections = {pg_max}",
        settings.database.max_connections
    );
}

#[test]
fn shutdown_outlasts_the_drain_and_the_pods_run_locked_down() {
    let docs = manifests();
    let dir = tempfile::tempdir().unwrap();
    let settings = configmap_settings(&docs, dir.path());
    let deployment = find(&docs, "Deployment", "concierge");
    let pod = pod_spec(deployment);
    let c = container(deployment);

    // preStop pause + the drain of in-flight turns < the grace period; the drain lets a
    // turn waiting on a device finish.
    let command: Vec<&str> = seq_of(&c["lifecycle"]["preStop"]["exec"]["command"], "preStop")
        .iter()
        .map(|a| str_of(a, "preStop"))
        .collect();
    assert_eq!(command.len(), 2);
    assert_eq!(command[0], "sleep");
    let pause: u64 = command[1].parse().unwrap();
    assert!(pause >= 5, "the load balancer needs a few seconds");
    let turns = settings.server.shutdown_grace_secs;
    assert!(
        turns * 1000 >= settings.kiosk.device_timeout_ms,
        "shutdown_grace_secs lets a device call finish"
    );
    // The node's own deadline covers its drain and the turns in flight (config validation
    // checks that); Kubernetes must not kill it before that deadline.
    let deadline = settings.server.stop_timeout_secs;
    assert!(deadline > settings.server.drain_secs + turns);
    let grace = int_of(
        &pod["terminationGracePeriodSeconds"],
        "terminationGracePeriodSeconds",
    );
    assert!(grace >= 30);
    assert!(
        grace > pause + deadline,
        "terminationGracePeriodSeconds {grace} must exceed preStop {pause} s + \
         stop_timeout_secs {deadline} s"
    );

    // Non-root, as the image's numeric user; read-only root; writable paths are emptyDirs.
    let dockerfile = std::fs::read_to_string(project_root().join(DOCKERFILE)).unwrap();
    let user = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER in the Dockerfile");
    let (uid, gid) = user.split_once(':').expect("USER uid:gid");
    let workdir = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("WORKDIR "))
        .next_back()
        .expect("WORKDIR");
    for (what, workload) in workloads(&docs) {
        let pod = pod_spec(workload);
        let c = container(workload);
        let sc = &pod["securityContext"];
        assert_eq!(sc["runAsNonRoot"], Value::Bool(true), "{what}");
        assert_eq!(
            int_of(&sc["runAsUser"], "runAsUser").to_string(),
            uid,
            "{what}"
        );
        assert_eq!(
            int_of(&sc["runAsGroup"], "runAsGroup").to_string(),
            gid,
            "{what}"
        );
        let csc = &c["securityContext"];
        assert_eq!(csc["readOnlyRootFilesystem"], Value::Bool(true), "{what}");
        assert_eq!(
            csc["allowPrivilegeEscalation"],
            Value::Bool(false),
            "{what}"
        );
        for limit in ["requests", "limits"] {
            assert!(
                c["resources"][limit]["memory"].is_string(),
                "{what}: {limit}"
            );
            assert!(c["resources"][limit]["cpu"].is_string(), "{what}: {limit}");
        }
        let empty_dirs: BTreeSet<&str> = seq_of(&pod["volumes"], "volumes")
            .iter()
            .filter(|v| v["emptyDir"].is_mapping())
            .map(|v| str_of(&v["name"], "volumes[].name"))
            .collect();
        let writable: BTreeSet<&str> = seq_of(&c["volumeMounts"], "volumeMounts")
            .iter()
            .filter(|m| empty_dirs.contains(str_of(&m["name"], "volumeMounts[].name")))
            .map(|m| str_of(&m["mountPath"], "mountPath"))
            .collect();
        assert!(writable.contains("/tmp"), "{what}: /tmp writable");
        if what.starts_with("Deployment") {
            assert!(
                writable.contains(format!("{workdir}/data").as_str()),
                "{what}: the data folder is an emptyDir"
            );
        }
    }

    // Every namespaced object is in the namespace.
    for d in manifests() {
        if !["Namespace", "Kustomization"].contains(&d.kind()) {
            assert_eq!(
                d.value["metadata"]["namespace"],
                Value::from("concierge"),
                "{}: {} {}",
                d.file,
                d.kind(),
                d.name()
            );
        }
    }

    // WebSockets through the Ingress: long timeouts, no stickiness needed.
    let ingress = find(&docs, "Ingress", "concierge");
    let annotations = string_map(&ingress["metadata"]["annotations"], "annotations");
    for a in ["proxy-read-timeout", "proxy-send-timeout"] {
        let secs: u64 = annotations[&format!("nginx.ingress.kubernetes.io/{a}")]
            .parse()
            .unwrap();
        assert!(secs >= 3600, "{a} {secs}");
    }
    assert!(!annotations.keys().any(|k| k.contains("affinity")));
}

// ---------------------------------------------------------------------------------------
// docker-compose.yml: two nodes, PostgreSQL, a WebSocket-aware balancer

#[test]
fn the_compose_file_runs_two_nodes_on_postgres_behind_a_websocket_balancer() {
    let path = project_root().join(COMPOSE);
    let compose: Value = serde_norway::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let services = compose["services"].as_mapping().expect("services");
    let names: BTreeSet<&str> = services.keys().map(|k| str_of(k, "service")).collect();
    for s in ["postgres", "migrate", "concierge-1", "concierge-2", "lb"] {
        assert!(names.contains(s), "service {s} in {COMPOSE}");
    }
    let defaults: toml::Table = toml::from_str(DEFAULT_TOML).unwrap();
    let mut listen_port = None;
    for node in ["migrate", "concierge-1", "concierge-2"] {
        let env = string_map(&compose["services"][node]["environment"], node);
        let url = url::Url::parse(&env["CONCIERGE__DATABASE__URL"]).unwrap();
        assert_eq!(url.scheme(), "postgres", "{node}");
        assert_eq!(
            url.host_str(),
            Some("postgres"),
            "{node}: the postgres service"
        );
        for var in env.keys() {
            assert!(
                names_a_setting(&defaults, var),
                "{node}: {var} names no setting"
            );
        }
        // The environment loads through the real binary, and its demo keys make a keyring.
        let out = concierge_validate(None, &env);
        assert!(
            out.status.success(),
            "{node}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let keys = SecuritySettings {
            data_keys: env
                .iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix("CONCIERGE__SECURITY__DATA_KEYS__")
                        .map(|id| (id.to_ascii_lowercase(), SecretString::from(v.clone())))
                })
                .collect(),
            active_key: env["CONCIERGE__SECURITY__ACTIVE_KEY"].clone(),
            lookup_secret: SecretString::from(env["CONCIERGE__SECURITY__LOOKUP_SECRET"].clone()),
            keys_file: String::new(),
        };
        keys.keyring(&SecretString::from(url.to_string()))
            .unwrap_or_else(|e| panic!("{node}: {e}"));
        let port = env["CONCIERGE__SERVER__LISTEN"]
            .rsplit_once(':')
            .unwrap()
            .1
            .to_string();
        listen_port = Some(port);
        let wait = if node == "migrate" {
            ("postgres", "service_healthy")
        } else {
            ("migrate", "service_completed_successfully")
        };
        assert_eq!(
            compose["services"][node]["depends_on"][wait.0]["condition"],
            Value::from(wait.1),
            "{node} waits for {}",
            wait.0
        );
    }
    let port = listen_port.unwrap();

    // The balancer mounts lb.conf, which sends to both nodes and upgrades WebSockets.
    let lb = &compose["services"]["lb"];
    let mount = seq_of(&lb["volumes"], "lb volumes")
        .iter()
        .map(|v| str_of(v, "lb volume"))
        .find(|v| v.contains("lb.conf"))
        .expect("lb.conf mounted");
    let source = mount.split(':').next().unwrap();
    let conf_path = path.parent().unwrap().join(source);
    let conf = std::fs::read_to_string(&conf_path)
        .unwrap_or_else(|e| panic!("{}: {e}", conf_path.display()));
    let upstream = conf
        .split("upstream concierge {")
        .nth(1)
        .and_then(|rest| rest.split('}').next())
        .expect("an upstream concierge block");
    for node in ["concierge-1", "concierge-2"] {
        assert!(
            upstream.contains(&format!("server {node}:{port}")),
            "lb.conf upstream names {node}:{port}"
        );
    }
    for sticky in ["ip_hash", "sticky", "hash "] {
        assert!(
            !upstream.contains(sticky),
            "no stickiness needed: sessions resume on any node"
        );
    }
    let ws = conf
        .split("location ~ ^/v1/(kiosk|staff)/ws$ {")
        .nth(1)
        .and_then(|rest| rest.split('}').next())
        .expect("a WebSocket location");
    for line in [
        "proxy_pass http://concierge;",
        "proxy_http_version 1.1;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
    ] {
        assert!(ws.contains(line), "the WebSocket location has `{line}`");
    }
    let timeout: u64 = regex::Regex::new(r"proxy_read_timeout (\d+)s;")
        .unwrap()
        .captures(ws)
        .expect("proxy_read_timeout")[1]
        .parse()
        .unwrap();
    assert!(timeout >= 3600, "proxy_read_timeout {timeout}");
    // Published: the balancer only.
    let published: Vec<&str> = seq_of(&lb["ports"], "lb ports")
        .iter()
        .map(|p| str_of(p, "port"))
        .collect();
    let listen = regex::Regex::new(r"listen (\d+);")
        .unwrap()
        .captures(&conf)
        .expect("listen")[1]
        .to_string();
    assert!(published.iter().any(|p| p.ends_with(&format!(":{listen}"))));
    for node in ["concierge-1", "concierge-2", "migrate"] {
        assert!(
            compose["services"][node]["ports"].is_null(),
            "{node} unpublished"
        );
    }
}
