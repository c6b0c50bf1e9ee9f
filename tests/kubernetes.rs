//! The Kubernetes manifests in deploy/kubernetes/ (PRODUCT.md §9), checked offline:
//!
//! - every manifest validates against the Kubernetes JSON schemas (kubernetes-validate, strict),
//!   and the Prometheus Operator's ServiceMonitor, PodMonitor and PrometheusRule against the
//!   operator's CRD schemas (python-jsonschema), through deploy/kubernetes/validate-manifests.py;
//! - the kustomization and the deploy/overlays/cluster-eu example render (`kubectl kustomize`),
//!   their output validates too, and the overlay's pod is kept apart from the base's;
//! - the validators do reject broken manifests, so a green run means something;
//! - prometheusrule.yaml is exactly what generate-prometheusrule.sh makes of
//!   alerts/lagwatch-rules.yaml;
//! - the sidecar's probes use /healthz only, the Deployment keeps its hardening, the Service and
//!   monitors select what they should, and the ConfigMaps pass `lagwatch check-config`.
//!
//! The validators are installed by `.ci/setup`; without them these tests fail, they never skip.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde::Deserialize;
use serde_json::Value;

const SETUP: &str =
    "run .ci/setup: it installs kubernetes-validate, jsonschema and PyYAML from PyPI into a venv, \
     kubectl, and fetches the Prometheus Operator CRD schemas";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn k8s_dir() -> PathBuf {
    root().join("deploy/kubernetes")
}

/// Every manifest in deploy/kubernetes/ (the kustomization itself is not a Kubernetes object).
fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(k8s_dir())
        .expect("deploy/kubernetes exists")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .filter(|p| p.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 5,
        "expected the deploy/kubernetes manifests, found {files:?}"
    );
    files
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// Every YAML document of a file, as JSON values.
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    parse_documents(&text, &path.display().to_string())
}

fn parse_documents(text: &str, what: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{what}: invalid YAML: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

fn one_of_kind(path: &Path, kind: &str) -> Value {
    let mut found: Vec<Value> = documents(path)
        .into_iter()
        .filter(|d| d["kind"] == kind)
        .collect();
    assert_eq!(found.len(), 1, "{}: expected one {kind}", path.display());
    found.remove(0)
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, got {v}"))
}

/// The Python of the validators' venv that `.ci/setup` makes (deploy/kubernetes/README.md).
fn validator_python() -> PathBuf {
    let cache = std::env::var("LAGWATCH_CACHE").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        format!("{home}/.cache/lagwatch")
    });
    let python = PathBuf::from(cache).join("k8s-validate/bin/python");
    assert!(
        python.exists(),
        "the manifest validators are not installed ({} is missing); {SETUP}",
        python.display()
    );
    python
}

/// Runs deploy/kubernetes/validate-manifests.py; panics naming .ci/setup when a tool is missing.
fn run_validator(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let script = k8s_dir().join("validate-manifests.py");
    let python = validator_python();
    let mut child = Command::new(&python)
        .arg(&script)
        .args(args)
        .current_dir(root())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} {}: {e}; {SETUP}",
                python.display(),
                script.display()
            )
        });
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input)
            .expect("write to the validator");
    }
    let out = child.wait_with_output().expect("validator runs");
    if out.status.code() == Some(3) {
        panic!(
            "the manifest validators are missing ({}); {SETUP}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    out
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts the validator passed every document: one `ok` line per document and Kubernetes
/// version, none skipped.
fn assert_all_ok(out: &Output, expected_docs: usize, what: &str) {
    let report = text(out);
    assert!(out.status.success(), "{what} did not validate:\n{report}");
    let ok = report.lines().filter(|l| l.starts_with("ok ")).count();
    assert!(
        expected_docs > 0 && ok >= expected_docs * 2 && ok % expected_docs == 0,
        "{what}: expected every one of {expected_docs} documents validated for each Kubernetes \
         version, got:\n{report}"
    );
}

#[test]
fn manifests_validate_against_kubernetes_and_prometheus_operator_crd_schemas() {
    let files = manifests();
    let docs: usize = files.iter().map(|f| documents(f).len()).sum();
    let args: Vec<String> = std::iter::once("validate".to_string())
        .chain(files.iter().map(|f| f.display().to_string()))
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_validator(&args, None);
    assert_all_ok(&out, docs, "deploy/kubernetes manifests");

    // The CRDs went through the operator's schemas, not a Kubernetes schema that lacks them.
    let report = text(&out);
    for kind in [
        "ServiceMonitor/lagwatch",
        "PrometheusRule/lagwatch",
        "PodMonitor/",
    ] {
        assert!(
            report
                .lines()
                .any(|l| l.starts_with("ok ") && l.contains(kind) && l.contains("CRD schema")),
            "{kind} was not validated against the Prometheus Operator CRD schema:\n{report}"
        );
    }
}

/// `kubectl kustomize DIR`: the rendered YAML and its objects.
fn kustomize(dir: &Path) -> (String, Vec<Value>) {
    let rendered = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run kubectl (for `kubectl kustomize`): {e}; {SETUP}"));
    assert!(
        rendered.status.success(),
        "kubectl kustomize {} failed:\n{}",
        dir.display(),
        text(&rendered)
    );
    let yaml = String::from_utf8(rendered.stdout).expect("UTF-8");
    let objects = parse_documents(&yaml, &format!("kubectl kustomize {}", dir.display()));
    (yaml, objects)
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = objects.iter().filter(|o| o["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "expected one {kind} in {objects:?}");
    found[0]
}

#[test]
fn kustomization_lists_the_manifests_and_renders_valid_objects() {
    let kustomization = documents(&k8s_dir().join("kustomization.yaml")).remove(0);
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_array()
        .expect("kustomization.yaml has resources")
        .iter()
        .map(|r| str_of(r, "resource").to_string())
        .collect();
    // Everything but the sidecar example, which deploys a (fictional) application.
    let expected: BTreeSet<String> = manifests()
        .iter()
        .map(|p| file_name(p))
        .filter(|n| n != "sidecar-example.yaml")
        .collect();
    assert_eq!(listed, expected, "kustomization.yaml resources");

    let (yaml, objects) = kustomize(&k8s_dir());
    assert_eq!(objects.len(), 5, "rendered objects:\n{yaml}");
    let namespace = &kustomization["namespace"];
    for object in &objects {
        assert_eq!(
            &object["metadata"]["namespace"], namespace,
            "kustomize sets the namespace of {}",
            object["kind"]
        );
    }
    let out = run_validator(&["validate", "-"], Some(yaml.as_bytes()));
    assert_all_ok(&out, objects.len(), "kubectl kustomize output");
}

/// The ConfigMap comes from kustomize's configMapGenerator: its name carries a hash of its
/// content, the Deployment refers to that name, and an edit of lagwatch.yaml changes it (so
/// `kubectl apply -k` rolls the pod without a manual restart).
#[test]
fn kustomize_configmap_name_follows_its_content() {
    let (_, objects) = kustomize(&k8s_dir());
    let configmap = of_kind(&objects, "ConfigMap");
    let name = str_of(&configmap["metadata"]["name"], "ConfigMap name").to_owned();
    let hash = name
        .strip_prefix("lagwatch-")
        .unwrap_or_else(|| panic!("ConfigMap {name} has no content hash"));
    assert_eq!(hash.len(), 10, "kustomize's hash suffix: {name}");
    let config = std::fs::read_to_string(k8s_dir().join("config/lagwatch.yaml")).expect("config");
    assert_eq!(str_of(&configmap["data"]["lagwatch.yaml"], "data"), config);
    let deployment = of_kind(&objects, "Deployment");
    let volumes = deployment["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .expect("volumes");
    assert!(
        volumes
            .iter()
            .any(|v| v["configMap"]["name"] == name.as_str()),
        "the Deployment mounts {name}: {volumes:?}"
    );

    // The same kustomization over an edited copy: another name.
    let copy = std::env::temp_dir().join(format!("lagwatch-kustomize-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::create_dir_all(copy.join("config")).expect("temp dir");
    for entry in std::fs::read_dir(k8s_dir()).expect("deploy/kubernetes") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            std::fs::copy(&path, copy.join(path.file_name().expect("name"))).expect("copy");
        }
    }
    std::fs::write(
        copy.join("config/lagwatch.yaml"),
        config.replace("poll_interval: 30s", "poll_interval: 15s"),
    )
    .expect("edited config");
    let (_, edited) = kustomize(&copy);
    let _ = std::fs::remove_dir_all(&copy);
    let edited_name = str_of(&of_kind(&edited, "ConfigMap")["metadata"]["name"], "name").to_owned();
    assert!(edited_name.starts_with("lagwatch-"));
    assert_ne!(edited_name, name, "an edit changes the ConfigMap's name");
    assert!(
        of_kind(&edited, "Deployment")["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .any(|v| v["configMap"]["name"] == edited_name.as_str()),
        "the Deployment follows the new name"
    );
}

#[test]
fn overlay_for_another_cluster_adds_a_separate_valid_pod() {
    let (_, base) = kustomize(&k8s_dir());
    let overlay_dir = root().join("deploy/overlays/cluster-eu");
    let (yaml, objects) = kustomize(&overlay_dir);
    let kinds: BTreeSet<&str> = objects.iter().map(|o| str_of(&o["kind"], "kind")).collect();
    // The ServiceMonitor and the PrometheusRule come once, from the base.
    assert_eq!(
        kinds,
        BTreeSet::from(["ConfigMap", "Deployment", "Service"]),
        "objects of the overlay:\n{yaml}"
    );
    let base_names: BTreeSet<(String, String)> = base
        .iter()
        .map(|o| (o["kind"].to_string(), o["metadata"]["name"].to_string()))
        .collect();
    for object in &objects {
        assert!(
            !base_names.contains(&(
                object["kind"].to_string(),
                object["metadata"]["name"].to_string()
            )),
            "the overlay's {} must not replace the base's",
            object["kind"]
        );
    }
    // Each Service selects its own pods only; the base's ServiceMonitor selects both Services.
    let deployment = of_kind(&objects, "Deployment");
    let service = of_kind(&objects, "Service");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    assert!(labels_match(&service["spec"]["selector"], pod_labels));
    let base_pod_labels = &of_kind(&base, "Deployment")["spec"]["template"]["metadata"]["labels"];
    for (selector, labels) in [
        (&service["spec"]["selector"], base_pod_labels),
        (&of_kind(&base, "Service")["spec"]["selector"], pod_labels),
        (
            &deployment["spec"]["selector"]["matchLabels"],
            base_pod_labels,
        ),
    ] {
        assert!(
            !labels_match(selector, labels),
            "selector {selector} must not select the other lagwatch's pods {labels}"
        );
    }
    let monitor = of_kind(&base, "ServiceMonitor");
    assert!(labels_match(
        &monitor["spec"]["selector"]["matchLabels"],
        &service["metadata"]["labels"]
    ));
    assert_lagwatch_config_ok(
        str_of(
            &of_kind(&objects, "ConfigMap")["data"]["lagwatch.yaml"],
            "data.lagwatch.yaml",
        ),
        deployment,
        "deploy/overlays/cluster-eu",
    );
    let out = run_validator(&["validate", "-"], Some(yaml.as_bytes()));
    assert_all_ok(
        &out,
        objects.len(),
        "kubectl kustomize deploy/overlays/cluster-eu",
    );
}

#[test]
fn validators_reject_broken_manifests() {
    // One mistake per document; each must be reported, or a green run would prove nothing.
    let broken = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: typo}
spec:
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      containers:
        - name: c
          image: i
          livenesProbe: {httpGet: {path: /healthz, port: 9308}}
---
apiVersion: v1
kind: Service
metadata: {name: wrong-type}
spec:
  ports:
    - port: "nine"
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: unknown-field}
spec:
  selector: {matchLabels: {a: b}}
  endpoints:
    - port: metrics
      intervall: 30s
---
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: bad-duration}
spec:
  groups:
    - name: g
      rules:
        - alert: A
          expr: up == 0
          for: 5 minutes
---
apiVersion: monitoring.coreos.com/v1
kind: PodMonitor
metadata: {name: missing-selector}
spec:
  podMetricsEndpoints: [{port: metrics}]
---
apiVersion: v1
kind: NoSuchKind
metadata: {name: unknown-kind}
"#;
    let out = run_validator(&["validate", "-"], Some(broken.as_bytes()));
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "validator output:\n{report}");
    for name in [
        "Deployment/typo",
        "Service/wrong-type",
        "ServiceMonitor/unknown-field",
        "PrometheusRule/bad-duration",
        "PodMonitor/missing-selector",
        "NoSuchKind/unknown-kind",
    ] {
        assert!(
            report
                .lines()
                .any(|l| l.starts_with("FAIL ") && l.contains(name)),
            "{name} was not rejected:\n{report}"
        );
        assert!(
            !report
                .lines()
                .any(|l| l.starts_with("ok ") && l.contains(name)),
            "{name} passed a Kubernetes version:\n{report}"
        );
    }
}

#[test]
fn prometheusrule_is_generated_from_the_alert_rules() {
    let rules_path = root().join("alerts/lagwatch-rules.yaml");
    assert!(rules_path.exists(), "alerts/lagwatch-rules.yaml is missing");
    let fresh = std::env::temp_dir().join(format!(
        "lagwatch-prometheusrule-{}.yaml",
        std::process::id()
    ));
    let out = Command::new("sh")
        .arg(k8s_dir().join("generate-prometheusrule.sh"))
        .arg("-o")
        .arg(&fresh)
        .output()
        .expect("run generate-prometheusrule.sh");
    assert!(
        out.status.success(),
        "generate-prometheusrule.sh failed:\n{}",
        text(&out)
    );
    let generated = std::fs::read_to_string(&fresh).expect("generated file");
    let _ = std::fs::remove_file(&fresh);
    let committed = std::fs::read_to_string(k8s_dir().join("prometheusrule.yaml"))
        .expect("prometheusrule.yaml");
    if generated != committed {
        let (line, (old, new)) = committed
            .lines()
            .chain(std::iter::repeat("<end of file>"))
            .zip(generated.lines().chain(std::iter::repeat("<end of file>")))
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .expect("the files differ");
        panic!(
            "deploy/kubernetes/prometheusrule.yaml is out of date with alerts/lagwatch-rules.yaml: \
             run deploy/kubernetes/generate-prometheusrule.sh\n\
             first difference, line {}:\n  committed: {old}\n  generated: {new}",
            line + 1
        );
    }

    // And the embedding is faithful: spec.groups are the rule file's groups, value for value.
    let rule = parse_documents(&generated, "generated PrometheusRule").remove(0);
    let rules = documents(&rules_path).remove(0);
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["kind"], "PrometheusRule");
    assert!(
        rules["groups"].as_array().is_some_and(|g| !g.is_empty()),
        "alerts/lagwatch-rules.yaml has no groups"
    );
    assert_eq!(rule["spec"]["groups"], rules["groups"]);
    assert_eq!(
        rule["spec"].as_object().unwrap().len(),
        1,
        "spec holds only groups"
    );
}

/// Every probe (liveness, readiness, startup) of a container: (kind, HTTP path).
fn probes(container: &Value) -> Vec<(&'static str, String)> {
    ["livenessProbe", "readinessProbe", "startupProbe"]
        .into_iter()
        .filter(|p| !container[*p].is_null())
        .map(|p| {
            let path = str_of(&container[p]["httpGet"]["path"], p).to_string();
            (p, path)
        })
        .collect()
}

fn containers(workload: &Value) -> &Vec<Value> {
    workload["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("pod template has containers")
}

fn container<'a>(workload: &'a Value, name: &str) -> &'a Value {
    containers(workload)
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

#[test]
fn sidecar_probes_use_healthz_only() {
    let path = k8s_dir().join("sidecar-example.yaml");
    let app = one_of_kind(&path, "Deployment");
    assert!(
        containers(&app).len() >= 2,
        "the sidecar example runs lagwatch beside an application container"
    );
    let sidecar = container(&app, "lagwatch");
    assert!(str_of(&sidecar["image"], "image").contains("lagwatch"));
    let sidecar_probes = probes(sidecar);
    assert!(
        sidecar_probes
            .iter()
            .any(|(kind, _)| *kind == "livenessProbe"),
        "the sidecar has a liveness probe"
    );
    for (kind, path) in &sidecar_probes {
        assert_eq!(
            path, "/healthz",
            "sidecar {kind} must use /healthz: a Kafka outage must never make the app pod unready"
        );
    }
    // No container of the application pod may look at lagwatch's readiness.
    let lagwatch_ports: Vec<&Value> = sidecar["ports"].as_array().unwrap().iter().collect();
    for c in containers(&app) {
        for (kind, path) in probes(c) {
            assert_ne!(
                path, "/readyz",
                "{} {kind} uses /readyz in the sidecar example",
                c["name"]
            );
            if c["name"] != "lagwatch" {
                let port = &c[kind]["httpGet"]["port"];
                assert!(
                    !lagwatch_ports
                        .iter()
                        .any(|p| &p["name"] == port || &p["containerPort"] == port),
                    "the application's {kind} must not probe lagwatch"
                );
            }
        }
    }
}

#[test]
fn deployment_runs_lagwatch_hardened_with_both_probes() {
    let deployment = one_of_kind(&k8s_dir().join("deployment.yaml"), "Deployment");
    assert_eq!(
        deployment["spec"]["replicas"], 1,
        "one poller per Kafka cluster"
    );
    let pod = &deployment["spec"]["template"]["spec"];
    let c = container(&deployment, "lagwatch");
    assert_eq!(c["image"], "lagwatch:latest");
    assert_eq!(
        c["args"].as_array().unwrap()[..2],
        [
            Value::from("--config"),
            Value::from("/etc/lagwatch/lagwatch.yaml")
        ]
    );
    let port = &c["ports"][0];
    assert_eq!(
        (&port["name"], &port["containerPort"]),
        (&Value::from("metrics"), &Value::from(9308))
    );
    assert_eq!(
        probes(c),
        [
            ("livenessProbe", "/healthz".to_string()),
            ("readinessProbe", "/readyz".to_string())
        ]
    );
    for kind in ["livenessProbe", "readinessProbe"] {
        assert_eq!(c[kind]["httpGet"]["port"], "metrics");
    }
    for key in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                !c["resources"][key][resource].is_null(),
                "resources.{key}.{resource} is set"
            );
        }
    }
    // Hardening: container-level settings, with the pod-level ones as the fallback Kubernetes uses.
    let sc = &c["securityContext"];
    let effective = |key: &str| {
        if sc[key].is_null() {
            pod["securityContext"][key].clone()
        } else {
            sc[key].clone()
        }
    };
    assert_eq!(effective("runAsNonRoot"), true);
    assert_eq!(effective("runAsUser"), 65532);
    assert_eq!(effective("seccompProfile")["type"], "RuntimeDefault");
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));

    // The SASL password comes from a Secret, under the name the ConfigMap refers to.
    let env = c["env"].as_array().expect("env");
    let sasl = env
        .iter()
        .find(|e| e["name"] == "LAGWATCH_SASL_PASSWORD")
        .expect("LAGWATCH_SASL_PASSWORD in env");
    assert!(
        sasl["valueFrom"]["secretKeyRef"]["name"].is_string()
            && sasl["valueFrom"]["secretKeyRef"]["key"].is_string(),
        "LAGWATCH_SASL_PASSWORD comes from a Secret"
    );
    assert!(sasl["value"].is_null(), "no literal secret in the manifest");

    // The config volume is the generated ConfigMap, mounted where --config points.
    let (_, rendered) = kustomize(&k8s_dir());
    let configmap = of_kind(&rendered, "ConfigMap");
    let deployment = of_kind(&rendered, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let c = container(deployment, "lagwatch");
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["configMap"]["name"] == configmap["metadata"]["name"])
        .expect("a volume from the lagwatch ConfigMap");
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == volume["name"])
        .expect("the ConfigMap volume is mounted");
    assert_eq!(mount["mountPath"], "/etc/lagwatch");
    assert!(configmap["data"]["lagwatch.yaml"].is_string());
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| &labels[k] == v))
}

#[test]
fn service_and_monitors_select_the_exporter() {
    let deployment = one_of_kind(&k8s_dir().join("deployment.yaml"), "Deployment");
    let service = one_of_kind(&k8s_dir().join("service.yaml"), "Service");
    let monitor = one_of_kind(&k8s_dir().join("servicemonitor.yaml"), "ServiceMonitor");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    assert!(labels_match(
        &deployment["spec"]["selector"]["matchLabels"],
        pod_labels
    ));
    assert!(
        labels_match(&service["spec"]["selector"], pod_labels),
        "the Service selects the lagwatch pods"
    );
    let service_port = &service["spec"]["ports"][0];
    assert_eq!(service_port["name"], "metrics");
    assert_eq!(service_port["targetPort"], "metrics");
    assert!(
        labels_match(
            &monitor["spec"]["selector"]["matchLabels"],
            &service["metadata"]["labels"]
        ),
        "the ServiceMonitor selects the Service"
    );
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], service_port["name"]);
    assert_eq!(endpoint["path"], "/metrics");

    let sidecar_file = k8s_dir().join("sidecar-example.yaml");
    let app = one_of_kind(&sidecar_file, "Deployment");
    let pod_monitor = one_of_kind(&sidecar_file, "PodMonitor");
    assert!(
        labels_match(
            &pod_monitor["spec"]["selector"]["matchLabels"],
            &app["spec"]["template"]["metadata"]["labels"]
        ),
        "the PodMonitor selects the application pods"
    );
    let port = &pod_monitor["spec"]["podMetricsEndpoints"][0]["port"];
    assert!(
        container(&app, "lagwatch")["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| &p["name"] == port),
        "the PodMonitor scrapes the sidecar's port"
    );
}

/// Every `{env: NAME}` in a lagwatch configuration.
fn env_references(config: &Value, out: &mut BTreeSet<String>) {
    match config {
        Value::Object(map) => {
            if map.len() == 1 {
                if let Some(Value::String(name)) = map.get("env") {
                    out.insert(name.clone());
                }
            }
            map.values().for_each(|v| env_references(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| env_references(v, out)),
        _ => {}
    }
}

/// The lagwatch configuration `config` of `workload`'s lagwatch container is accepted by
/// `lagwatch check-config`, and its `{env: NAME}` secrets come from a Secret.
fn assert_lagwatch_config_ok(config: &str, workload: &Value, what: &str) {
    let parsed = parse_documents(config, "lagwatch.yaml").remove(0);
    assert_eq!(
        parsed["clusters"].as_array().map(Vec::len),
        Some(1),
        "{what}: one Kafka cluster per lagwatch pod"
    );

    // Each {env: NAME} is set by the pod, from a Secret.
    let mut names = BTreeSet::new();
    env_references(&parsed, &mut names);
    assert!(
        names.contains("LAGWATCH_SASL_PASSWORD"),
        "{what}: sasl.password comes from {{env: LAGWATCH_SASL_PASSWORD}}"
    );
    let c = container(workload, "lagwatch");
    for name in &names {
        let var = c["env"]
            .as_array()
            .and_then(|env| env.iter().find(|e| &e["name"] == name))
            .unwrap_or_else(|| panic!("{what}: {name} is not set"));
        assert!(
            var["valueFrom"]["secretKeyRef"].is_object(),
            "{what}: {name} comes from a Secret"
        );
    }

    // The real parser accepts the file.
    let dir = std::env::temp_dir().join(format!(
        "lagwatch-k8s-config-{}-{}",
        std::process::id(),
        what.replace(['/', '.'], "-")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("lagwatch.yaml");
    std::fs::write(&file, config).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lagwatch"));
    cmd.arg("check-config").arg("--config").arg(&file);
    for name in &names {
        cmd.env(name, "not-a-real-secret");
    }
    let out = cmd.output().expect("run lagwatch check-config");
    let _ = std::fs::remove_dir_all(&dir);
    let report = text(&out);
    assert!(
        out.status.success(),
        "{what}: lagwatch check-config rejects the configuration:\n{report}"
    );
    assert!(
        !report.contains("not-a-real-secret"),
        "{what}: check-config redacts the secret"
    );
}

#[test]
fn configmaps_pass_lagwatch_check_config() {
    let base = std::fs::read_to_string(k8s_dir().join("config/lagwatch.yaml"))
        .expect("deploy/kubernetes/config/lagwatch.yaml");
    let deployment = one_of_kind(&k8s_dir().join("deployment.yaml"), "Deployment");
    assert_lagwatch_config_ok(&base, &deployment, "deploy/kubernetes/config/lagwatch.yaml");
    let sidecar_file = k8s_dir().join("sidecar-example.yaml");
    let sidecar = one_of_kind(&sidecar_file, "ConfigMap");
    assert_lagwatch_config_ok(
        str_of(&sidecar["data"]["lagwatch.yaml"], "data.lagwatch.yaml"),
        &one_of_kind(&sidecar_file, "Deployment"),
        "deploy/kubernetes/sidecar-example.yaml",
    );
}

// ---- Helm chart (deploy/helm/lagwatch) ----------------------------------------------------

fn chart_dir() -> PathBuf {
    root().join("deploy/helm/lagwatch")
}

/// Helm, pinned in .ci/helm-version and installed by `.ci/setup` from the Go module proxy.
fn helm() -> Command {
    let version =
        std::fs::read_to_string(root().join(".ci/helm-version")).expect(".ci/helm-version");
    let cache = std::env::var("LAGWATCH_CACHE").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        format!("{home}/.cache/lagwatch")
    });
    let binary = PathBuf::from(cache).join(format!("helm-{}/bin/helm", version.trim()));
    assert!(
        binary.exists(),
        "Helm {} is not installed ({} is missing): run .ci/setup",
        version.trim(),
        binary.display()
    );
    let mut cmd = Command::new(binary);
    // No repository configuration or cache of the user's: lint and template work offline.
    let home = std::env::temp_dir().join(format!("lagwatch-helm-home-{}", std::process::id()));
    cmd.env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"));
    cmd
}

/// The chart's value sets: the defaults, then every `ci/*-values.yaml`.
fn value_sets() -> Vec<Option<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(chart_dir().join("ci"))
        .expect("deploy/helm/lagwatch/ci")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with("-values.yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "value sets: {files:?}");
    std::iter::once(None)
        .chain(files.into_iter().map(Some))
        .collect()
}

fn values_name(values: &Option<PathBuf>) -> String {
    values
        .as_ref()
        .map_or("default values".to_string(), |p| file_name(p))
}

fn values_of(values: &Option<PathBuf>) -> Value {
    let defaults = documents(&chart_dir().join("values.yaml")).remove(0);
    let Some(path) = values else {
        return defaults;
    };
    fn merge(base: &mut Value, over: &Value) {
        match (base, over) {
            (Value::Object(b), Value::Object(o)) => {
                for (k, v) in o {
                    merge(b.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
            (b, o) => *b = o.clone(),
        }
    }
    let mut merged = defaults;
    merge(&mut merged, &documents(path).remove(0));
    merged
}

/// `helm template lagwatch deploy/helm/lagwatch -n monitoring [-f values]`: YAML and objects.
fn helm_template(values: &Option<PathBuf>) -> (String, Vec<Value>) {
    let mut cmd = helm();
    cmd.args(["template", "lagwatch", "--namespace", "monitoring"])
        .arg(chart_dir());
    if let Some(v) = values {
        cmd.arg("--values").arg(v);
    }
    let out = cmd.output().expect("run helm template");
    assert!(
        out.status.success(),
        "helm template ({}) failed:\n{}",
        values_name(values),
        text(&out)
    );
    let yaml = String::from_utf8(out.stdout).expect("UTF-8");
    let objects = parse_documents(&yaml, &format!("helm template ({})", values_name(values)));
    (yaml, objects)
}

fn all_of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

#[test]
fn helm_chart_lints_with_every_value_set() {
    for values in value_sets() {
        let mut cmd = helm();
        cmd.args(["lint", "--strict", "--namespace", "monitoring"])
            .arg(chart_dir());
        if let Some(v) = &values {
            cmd.arg("--values").arg(v);
        }
        let out = cmd.output().expect("run helm lint");
        let report = text(&out);
        assert!(
            out.status.success() && report.contains("0 chart(s) failed"),
            "helm lint --strict ({}):\n{report}",
            values_name(&values)
        );
    }
    // And lint does fail a broken chart configuration.
    let out = helm()
        .args(["lint", "--strict", "--set", "replicas=0"])
        .arg(chart_dir())
        .output()
        .expect("run helm lint");
    assert!(
        !out.status.success(),
        "replicas=0 passes lint:\n{}",
        text(&out)
    );
}

#[test]
fn helm_templates_validate_and_wire_up() {
    let rules = documents(&root().join("alerts/lagwatch-rules.yaml")).remove(0);
    let deployment = one_of_kind(&k8s_dir().join("deployment.yaml"), "Deployment");
    let kustomize_container = container(&deployment, "lagwatch");
    for values in value_sets() {
        let what = values_name(&values);
        let v = values_of(&values);
        let (yaml, objects) = helm_template(&values);
        let out = run_validator(&["validate", "-"], Some(yaml.as_bytes()));
        assert_all_ok(&out, objects.len(), &format!("helm template ({what})"));

        // The StatefulSet: replicas, its governing headless Service, which the ServiceMonitor selects.
        let sts = of_kind(&objects, "StatefulSet");
        let replicas = v["replicas"].as_u64().expect("replicas");
        assert_eq!(sts["spec"]["replicas"], replicas, "{what}");
        assert_eq!(sts["spec"]["podManagementPolicy"], "Parallel", "{what}");
        let service = of_kind(&objects, "Service");
        assert_eq!(
            sts["spec"]["serviceName"], service["metadata"]["name"],
            "{what}"
        );
        assert_eq!(service["spec"]["clusterIP"], "None", "{what}: headless");
        let pod_labels = &sts["spec"]["template"]["metadata"]["labels"];
        assert!(labels_match(
            &sts["spec"]["selector"]["matchLabels"],
            pod_labels
        ));
        assert!(
            labels_match(&service["spec"]["selector"], pod_labels),
            "{what}"
        );
        assert!(
            sts["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
                .as_str()
                .is_some_and(|c| c.len() == 64),
            "{what}: the pods carry the config's checksum, so an edit rolls them"
        );

        // Hardened as the plain manifests are.
        let pod = &sts["spec"]["template"]["spec"];
        let c = container(sts, "lagwatch");
        assert_eq!(
            c["securityContext"], kustomize_container["securityContext"],
            "{what}: container securityContext"
        );
        assert_eq!(
            pod["securityContext"], deployment["spec"]["template"]["spec"]["securityContext"],
            "{what}: pod securityContext"
        );
        assert_eq!(pod["automountServiceAccountToken"], false);
        assert_eq!(
            probes(c),
            [
                ("livenessProbe", "/healthz".to_string()),
                ("readinessProbe", "/readyz".to_string())
            ]
        );
        let init = &pod["initContainers"][0];
        assert_eq!(
            init["securityContext"], c["securityContext"],
            "{what}: init container"
        );

        // Secrets: each env from the Secret the values name (existing, or the chart's own).
        let secrets = all_of_kind(&objects, "Secret");
        let existing = v["secrets"]["existingSecret"].as_str().unwrap_or("");
        let from_values = v["secrets"]["values"]
            .as_object()
            .is_some_and(|m| !m.is_empty());
        assert_eq!(
            secrets.len(),
            usize::from(existing.is_empty() && from_values),
            "{what}: the chart makes a Secret only from values"
        );
        let secret_name = if existing.is_empty() {
            secrets
                .first()
                .map(|s| str_of(&s["metadata"]["name"], "name").to_owned())
                .unwrap_or_default()
        } else {
            existing.to_owned()
        };
        let mut env_map = v["secrets"]["env"].as_object().cloned().unwrap_or_default();
        env_map.retain(|_, key| !key.is_null());
        if let Some(keys) = v["secrets"]["values"].as_object().filter(|_| from_values) {
            for key in env_map.values() {
                assert!(
                    keys.contains_key(str_of(key, "secret key")),
                    "{what}: env from key {key}, which the chart's Secret lacks"
                );
            }
        }
        for (name, key) in &env_map {
            let var = c["env"]
                .as_array()
                .and_then(|e| e.iter().find(|e| e["name"] == name.as_str()))
                .unwrap_or_else(|| panic!("{what}: no env {name}"));
            assert_eq!(
                var["valueFrom"]["secretKeyRef"]["name"],
                secret_name.as_str()
            );
            assert_eq!(&var["valueFrom"]["secretKeyRef"]["key"], key);
        }
        let configmap = all_of_kind(&objects, "ConfigMap")
            .into_iter()
            .find(|cm| cm["data"]["lagwatch.yaml"].is_string())
            .expect("the lagwatch ConfigMap");
        let config = str_of(&configmap["data"]["lagwatch.yaml"], "lagwatch.yaml");
        for value in v["secrets"]["values"].as_object().into_iter().flatten() {
            let value = value.1.as_str().unwrap_or("");
            assert!(!config.contains(value), "{what}: a secret in the ConfigMap");
        }
        assert!(
            !config.contains("shard"),
            "{what}: the shard comes from the ordinal"
        );
        if let Some(mount) = v["secrets"]["mountPath"].as_str().filter(|m| !m.is_empty()) {
            let volume = pod["volumes"]
                .as_array()
                .and_then(|vs| {
                    vs.iter()
                        .find(|v| v["secret"]["secretName"] == secret_name.as_str())
                })
                .unwrap_or_else(|| panic!("{what}: no volume of Secret {secret_name}"));
            assert!(c["volumeMounts"].as_array().is_some_and(|m| m
                .iter()
                .any(|m| m["name"] == volume["name"] && m["mountPath"] == mount)));
        }

        // Monitoring objects, as enabled.
        let monitors = all_of_kind(&objects, "ServiceMonitor");
        assert_eq!(
            monitors.len(),
            usize::from(v["serviceMonitor"]["enabled"] == true),
            "{what}"
        );
        if let Some(m) = monitors.first() {
            assert!(labels_match(
                &m["spec"]["selector"]["matchLabels"],
                &service["metadata"]["labels"]
            ));
            assert_eq!(m["spec"]["endpoints"][0]["port"], "metrics");
            assert_eq!(
                m["spec"]["endpoints"][0]["interval"], v["pollInterval"],
                "{what}"
            );
            for (k, label) in v["serviceMonitor"]["labels"]
                .as_object()
                .into_iter()
                .flatten()
            {
                assert_eq!(&m["metadata"]["labels"][k], label, "{what}");
            }
        }
        let rule_objects = all_of_kind(&objects, "PrometheusRule");
        assert_eq!(
            rule_objects.len(),
            usize::from(v["prometheusRule"]["enabled"] == true)
        );
        if let Some(r) = rule_objects.first() {
            assert_eq!(
                r["spec"]["groups"], rules["groups"],
                "{what}: the PrometheusRule is alerts/lagwatch-rules.yaml"
            );
        }
        let dashboards: Vec<&Value> = all_of_kind(&objects, "ConfigMap")
            .into_iter()
            .filter(|cm| !cm["metadata"]["labels"]["grafana_dashboard"].is_null())
            .collect();
        if v["dashboards"]["enabled"] == true {
            let mut files: Vec<String> = std::fs::read_dir(root().join("dashboards"))
                .expect("dashboards/")
                .map(|e| file_name(&e.expect("entry").path()))
                .filter(|n| n.ends_with(".json"))
                .collect();
            files.sort();
            assert_eq!(
                dashboards.len(),
                files.len(),
                "{what}: one ConfigMap per dashboard"
            );
            for file in files {
                let cm = dashboards
                    .iter()
                    .find(|cm| cm["data"][&file].is_string())
                    .unwrap_or_else(|| panic!("{what}: no ConfigMap holds {file}"));
                assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
                let shipped: Value = serde_json::from_str(
                    &std::fs::read_to_string(root().join("dashboards").join(&file))
                        .expect("dashboard"),
                )
                .expect("dashboard JSON");
                let embedded: Value = serde_json::from_str(str_of(&cm["data"][&file], "dashboard"))
                    .expect("embedded JSON");
                assert_eq!(embedded, shipped, "{what}: {file} as shipped");
                if let Some(folder) = v["dashboards"]["folder"].as_str().filter(|f| !f.is_empty()) {
                    assert_eq!(cm["metadata"]["annotations"]["grafana_folder"], folder);
                }
            }
        } else {
            assert!(dashboards.is_empty(), "{what}");
        }
    }
}

/// Each pod's init container appends `shard: {index: <ordinal>, count: <replicas>}` to the
/// chart's lagwatch.yaml; run here with sh for every pod of the sharded value set, the result
/// passes `lagwatch check-config`, which reports the pod's own shard.
#[test]
fn helm_statefulset_shards_by_pod_ordinal() {
    let sharded = value_sets()
        .into_iter()
        .find(|v| {
            v.as_ref()
                .is_some_and(|p| file_name(p).starts_with("sharded"))
        })
        .expect("ci/sharded-values.yaml");
    let (_, objects) = helm_template(&sharded);
    let sts = of_kind(&objects, "StatefulSet");
    let replicas = sts["spec"]["replicas"].as_u64().expect("replicas");
    assert!(replicas >= 3);
    let name = str_of(&sts["metadata"]["name"], "name");
    let init = &sts["spec"]["template"]["spec"]["initContainers"][0];
    let command: Vec<&str> = init["command"]
        .as_array()
        .expect("command")
        .iter()
        .map(|c| str_of(c, "command"))
        .collect();
    assert_eq!(command[..2], ["/bin/sh", "-c"]);
    let env_value = |n: &str| {
        init["env"]
            .as_array()
            .and_then(|e| e.iter().find(|e| e["name"] == n))
            .cloned()
            .unwrap_or_else(|| panic!("init env {n}"))
    };
    assert_eq!(
        env_value("POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    let count = str_of(&env_value("SHARD_COUNT")["value"], "SHARD_COUNT").to_owned();
    assert_eq!(count, replicas.to_string());
    let config = all_of_kind(&objects, "ConfigMap")
        .into_iter()
        .find_map(|cm| cm["data"]["lagwatch.yaml"].as_str())
        .expect("lagwatch.yaml")
        .to_owned();

    let dir = std::env::temp_dir().join(format!("lagwatch-helm-shards-{}", std::process::id()));
    let run = |pod: &str| -> (Output, String) {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("base")).expect("dir");
        std::fs::create_dir_all(dir.join("out")).expect("dir");
        std::fs::write(dir.join("base/lagwatch.yaml"), &config).expect("config");
        let script = command[2]
            .replace("/etc/lagwatch-base/", &format!("{}/base/", dir.display()))
            .replace("/etc/lagwatch/", &format!("{}/out/", dir.display()));
        let out = Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("POD_NAME", pod)
            .env("SHARD_COUNT", &count)
            .output()
            .expect("sh");
        let written = std::fs::read_to_string(dir.join("out/lagwatch.yaml")).unwrap_or_default();
        (out, written)
    };
    for ordinal in 0..replicas {
        let (out, written) = run(&format!("{name}-{ordinal}"));
        assert!(
            out.status.success(),
            "init script for pod {ordinal}:\n{}",
            text(&out)
        );
        let file = dir.join("out/lagwatch.yaml");
        let check = Command::new(env!("CARGO_BIN_EXE_lagwatch"))
            .arg("check-config")
            .arg("--config")
            .arg(&file)
            .env("LAGWATCH_SASL_PASSWORD", "not-a-real-secret")
            .output()
            .expect("lagwatch check-config");
        let report = text(&check);
        assert!(
            check.status.success(),
            "pod {ordinal}: check-config:\n{report}\n{written}"
        );
        assert!(
            report.contains(&format!(
                "shard:\n  index: {ordinal}\n  count: {replicas}\n"
            )),
            "pod {ordinal} is shard {ordinal} of {replicas}:\n{report}"
        );
    }
    let (out, _) = run("lagwatch-x");
    assert!(
        !out.status.success(),
        "a pod name without an ordinal is refused"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every value set's lagwatch.yaml (with the shard of pod 0) passes `lagwatch check-config`.
#[test]
fn helm_configs_pass_lagwatch_check_config() {
    for values in value_sets() {
        let what = values_name(&values);
        let (_, objects) = helm_template(&values);
        let config = all_of_kind(&objects, "ConfigMap")
            .into_iter()
            .find_map(|cm| cm["data"]["lagwatch.yaml"].as_str())
            .expect("lagwatch.yaml")
            .to_owned();
        let sts = of_kind(&objects, "StatefulSet");
        let parsed = parse_documents(&config, "lagwatch.yaml").remove(0);
        let mut names = BTreeSet::new();
        env_references(&parsed, &mut names);
        let c = container(sts, "lagwatch");
        for name in &names {
            assert!(
                c["env"].as_array().is_some_and(|e| e
                    .iter()
                    .any(|e| &e["name"] == name && e["valueFrom"]["secretKeyRef"].is_object())),
                "{what}: {name} comes from a Secret"
            );
        }
        let dir = std::env::temp_dir().join(format!(
            "lagwatch-helm-config-{}-{}",
            std::process::id(),
            what.replace(['/', '.', ' '], "-")
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        // check-config loads the certificates and keys the configuration names: the files the
        // chart mounts are made here, a matching pair with the key encrypted by the value the
        // secret variables get below.
        let mounted = "/etc/lagwatch/secrets";
        let config = if config.contains(mounted) {
            let secrets = dir.join("secrets");
            std::fs::create_dir_all(&secrets).expect("secrets dir");
            let made = Command::new("openssl")
                .args(["req", "-x509", "-newkey", "rsa:2048", "-days", "1"])
                .args([
                    "-subj",
                    "/CN=lagwatch",
                    "-passout",
                    "pass:not-a-real-secret",
                ])
                .arg("-keyout")
                .arg(secrets.join("client.key"))
                .arg("-out")
                .arg(secrets.join("client.crt"))
                .output()
                .expect("openssl");
            assert!(made.status.success(), "openssl: {}", text(&made));
            config.replace(mounted, &secrets.to_string_lossy())
        } else {
            config
        };
        let file = dir.join("lagwatch.yaml");
        std::fs::write(&file, format!("{config}\nshard:\n  index: 0\n  count: 1\n"))
            .expect("write");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lagwatch"));
        cmd.arg("check-config").arg("--config").arg(&file);
        for name in &names {
            cmd.env(name, "not-a-real-secret");
        }
        let out = cmd.output().expect("check-config");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            out.status.success(),
            "{what}: check-config:\n{}",
            text(&out)
        );
    }
}
