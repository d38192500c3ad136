//! Argument handling and file access for the `fhirgate` tool; the logic lives in
//! `fhirgate::authoring`.

use std::io::Write;
use std::path::Path;

use fhirgate::authoring::{
    self, cases::Expect, check_document, istio, render, Case, CaseRequest, DocumentKind, Format,
    Policy, RenderOptions,
};
use serde_json::Value;

const USAGE: &str = "\
usage:
  fhirgate check <policy.json|config.json>...
      compile and lint the rules of policy files or plugin configurations
  fhirgate test [dir]
      run every <name>.cases.json in dir (default: policies) against <name>.json, through the
      filter's decision (FHIR base /fhir, SMART enforced, the policy's rules)
  fhirgate eval --policy p.json --token claims.json|'{...}' --request 'GET /fhir/Observation?patient=1'
                [--source ip:port] [--header name:value]... [--body file.json] [--response resource.json]
                [--rules-only]
      explain one decision step by step: token, FHIR request, SMART, each rule (with --rules-only:
      the policy's rules alone, without SMART enforcement)
  fhirgate render --policy p.json [--base config.json] --format plugin|envoy|wasmplugin|envoyfilter
                  [--name fhirgate] [--namespace default] [--wasm path] [--selector key=value]...
                  [--image oci://registry/fhirgate:tag] [--sha256 hex | --oci-layout target/oci]
                  [--port 8080]
      write the plugin configuration, an Envoy filter, or an Istio WasmPlugin (safe mode) or
      EnvoyFilter (full mode); the Istio manifests pin the module: --sha256 is the image
      manifest's digest for oci:// (the module's for https://), --oci-layout reads it from the
      layout `make oci` built
";

/// Exit codes: 0 success, 1 problems found / tests failed, 2 usage or I/O error.
pub fn run(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let result = match args.first().map(String::as_str) {
        Some("check") => check(args.get(1..).unwrap_or_default(), out),
        Some("test") => test(args.get(1..).unwrap_or_default(), out),
        Some("eval") => eval(args.get(1..).unwrap_or_default(), out),
        Some("render") => render_cmd(args.get(1..).unwrap_or_default(), out),
        Some("help" | "--help" | "-h") => {
            let _ = write!(out, "{USAGE}");
            Ok(0)
        }
        _ => Err(format!("unknown or missing command\n{USAGE}")),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            let _ = writeln!(err, "fhirgate: {message}");
            2
        }
    }
}

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
}

fn read_json(path_or_inline: &str) -> Result<Value, String> {
    let text = if path_or_inline.trim_start().starts_with('{') {
        path_or_inline.to_string()
    } else {
        read(path_or_inline)?
    };
    serde_json::from_str(&text).map_err(|e| format!("{path_or_inline}: not valid JSON: {e}"))
}

/// `--flag value` options; repeated flags keep every value.
struct Opts {
    pairs: Vec<(String, String)>,
    switches: Vec<String>,
}

impl Opts {
    fn parse(args: &[String], known: &[&str], switches: &[&str]) -> Result<Opts, String> {
        let mut pairs = Vec::new();
        let mut on = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if switches.contains(&a.as_str()) {
                on.push(a.clone());
                continue;
            }
            if !known.contains(&a.as_str()) {
                return Err(format!("unexpected argument {a:?}\n{USAGE}"));
            }
            let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
            pairs.push((a.clone(), v.clone()));
        }
        Ok(Opts {
            pairs,
            switches: on,
        })
    }

    fn switch(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }

    fn one(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn need(&self, name: &str) -> Result<&str, String> {
        self.one(name)
            .ok_or_else(|| format!("{name} is required\n{USAGE}"))
    }
}

fn check(files: &[String], out: &mut dyn Write) -> Result<i32, String> {
    if files.is_empty() {
        return Err(format!("check needs at least one file\n{USAGE}"));
    }
    let mut failed = false;
    for f in files {
        let report = check_document(&read(f)?);
        let kind = match report.kind {
            DocumentKind::Policy => "policy",
            DocumentKind::PluginConfig => "plugin configuration",
        };
        if report.problems.is_empty() {
            let _ = writeln!(out, "{f}: ok ({kind}, {} rules)", report.rules);
        } else {
            failed = true;
            for p in &report.problems {
                let _ = writeln!(out, "{f}: {p}");
            }
        }
    }
    Ok(i32::from(failed))
}

/// Reads the `*.json` files of a directory as (file name, contents), sorted by name.
pub fn read_dir_json(dir: &Path) -> Result<Vec<(String, String)>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.ends_with(".json") && path.is_file() {
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            files.push((name.to_string(), text));
        }
    }
    files.sort();
    Ok(files)
}

fn test(args: &[String], out: &mut dyn Write) -> Result<i32, String> {
    let dir = match args {
        [] => "policies",
        [d] => d.as_str(),
        _ => return Err(format!("test takes at most one directory\n{USAGE}")),
    };
    let files = read_dir_json(Path::new(dir))?;
    if files.is_empty() {
        return Err(format!("{dir}: no policy files"));
    }
    let report = authoring::test_files(&files);
    let _ = write!(out, "{}", report.render());
    Ok(i32::from(report.failed() > 0))
}

fn eval(args: &[String], out: &mut dyn Write) -> Result<i32, String> {
    let o = Opts::parse(
        args,
        &[
            "--policy",
            "--token",
            "--request",
            "--source",
            "--header",
            "--body",
            "--response",
        ],
        &["--rules-only"],
    )?;
    let policy_path = o.need("--policy")?;
    let (policy, rules) = match Policy::parse(&read(policy_path)?) {
        Ok(x) => x,
        Err(problems) => {
            for p in problems {
                let _ = writeln!(out, "{policy_path}: {p}");
            }
            return Ok(1);
        }
    };
    let token = match read_json(o.need("--token")?)? {
        Value::Object(m) => m,
        _ => return Err("--token must be a JSON object of claims".to_string()),
    };
    let line = o.need("--request")?.trim();
    let (method, path) = match line.split_once(' ') {
        Some((m, p)) => (m.to_string(), p.trim().to_string()),
        None => ("GET".to_string(), line.to_string()),
    };
    let mut headers = std::collections::BTreeMap::new();
    for h in o.all("--header") {
        let (k, v) = h
            .split_once(':')
            .ok_or_else(|| format!("--header {h:?}: expected name:value"))?;
        headers.insert(k.trim().to_string(), v.trim().to_string());
    }
    let body = match o.one("--body") {
        Some(p) => {
            let text = read(p)?;
            Some(serde_json::from_str(&text).unwrap_or(Value::String(text)))
        }
        None => None,
    };
    let case = Case {
        name: "eval".to_string(),
        token,
        request: CaseRequest {
            method,
            path,
            headers,
            source: o.one("--source").map(str::to_string),
            body,
        },
        response: o.one("--response").map(read_json).transpose()?,
        expect: Expect {
            decision: authoring::cases::Decision::Allow,
            status: None,
            reason: None,
            rule: None,
            flags: None,
            scope: None,
            acr_values: None,
            withheld: None,
            redacted: None,
            withheld_labels: None,
            narrowed: None,
        },
    };
    let decider = if o.switch("--rules-only") {
        authoring::rules_only_decider(&policy, &rules)?
    } else {
        authoring::default_decider(&policy, &rules)?
    };
    let outcome = decider.decide(&case)?;
    for (i, line) in outcome.explanation.iter().enumerate() {
        let _ = writeln!(out, "{:>2}. {line}", i + 1);
    }
    Ok(0)
}

/// The manifest digest that the OCI image layout in `dir` (`make oci`) holds for the image URL's
/// tag.
fn layout_digest(dir: &str, url: Option<&str>) -> Result<String, String> {
    let url = url.unwrap_or(istio::DEFAULT_IMAGE);
    let reference = istio::oci_ref(url)
        .ok_or_else(|| format!("--oci-layout pins an oci:// image, not {url:?}"))?;
    let index = read(&format!("{dir}/index.json"))?;
    istio::layout_manifest_digest(&index, &reference).map_err(|e| format!("{dir}: {e}"))
}

fn render_cmd(args: &[String], out: &mut dyn Write) -> Result<i32, String> {
    let o = Opts::parse(
        args,
        &[
            "--policy",
            "--base",
            "--format",
            "--name",
            "--namespace",
            "--wasm",
            "--image",
            "--sha256",
            "--oci-layout",
            "--port",
            "--selector",
        ],
        &[],
    )?;
    let policy_path = o.need("--policy")?;
    let (policy, _) = Policy::parse(&read(policy_path)?).map_err(|p| {
        let lines: Vec<String> = p.iter().map(|x| format!("{policy_path}: {x}")).collect();
        lines.join("\n")
    })?;
    let format_name = o.need("--format")?;
    let format = Format::parse(format_name).ok_or_else(|| {
        format!("--format {format_name:?}: use plugin, envoy, wasmplugin or envoyfilter")
    })?;
    let base = o.one("--base").map(read_json).transpose()?;
    let mut opts = RenderOptions::default();
    if let Some(n) = o.one("--name") {
        opts.name = n.to_string();
    }
    if let Some(n) = o.one("--namespace") {
        opts.namespace = n.to_string();
    }
    opts.wasm = o.one("--image").or(o.one("--wasm")).map(str::to_string);
    opts.port = o
        .one("--port")
        .map(|p| match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("--port {p:?}: expected 1-65535")),
        })
        .transpose()?;
    opts.sha256 = match (o.one("--sha256"), o.one("--oci-layout")) {
        (Some(_), Some(_)) => return Err("give --sha256 or --oci-layout, not both".to_string()),
        (Some(s), None) => Some(s.to_string()),
        (None, Some(dir)) => Some(layout_digest(dir, opts.wasm.as_deref())?),
        (None, None) => None,
    };
    let selectors: Vec<&str> = o.all("--selector").collect();
    if !selectors.is_empty() {
        opts.selector = selectors
            .iter()
            .map(|s| {
                s.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .ok_or_else(|| format!("--selector {s:?}: expected key=value"))
            })
            .collect::<Result<_, _>>()?;
    }
    let text = render(&policy, base.as_ref(), format, &opts)?;
    let _ = write!(out, "{text}");
    Ok(0)
}
