//! What the headers of one run's trace files must agree on (`docs/trace.md` §1): the schema
//! version, the served cluster and the protocol configuration. The model of a check is built from
//! them, and one model cannot stand for nodes that ran with different settings, so every
//! disagreement is an error naming each field and which nodes stated which value — never the
//! first file's header winning.

use std::collections::BTreeMap;
use std::fmt;

use vigil_core as core;

use crate::trace::{NodeTrace, SCHEMA_VERSION};

/// What every header of a run states.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunHeader {
    /// The schema version of every file.
    pub version: u32,
    /// The cluster every header that names one names; `None` when none does (a proxy serving
    /// several clusters names none).
    pub cluster: Option<String>,
    /// The protocol configuration every header states. Hosts of schema version 1 stated none:
    /// then it is the default with the masters' count of the master traces.
    pub config: core::Config,
}

/// One field on which the headers disagree, with each value and the nodes that stated it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disagreement {
    /// `version`, `cluster`, `config` (stated by some headers, not by others) or
    /// `config.<field>`.
    pub field: String,
    /// Each value as written, with the nodes whose header states it, in node order.
    pub values: Vec<(String, Vec<String>)>,
}

impl fmt::Display for Disagreement {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: ", self.field)?;
        for (index, (value, nodes)) in self.values.iter().enumerate() {
            let separator = if index == 0 { "" } else { "; " };
            write!(formatter, "{separator}{value} at {}", nodes.join(", "))?;
        }
        Ok(())
    }
}

/// Why the headers of a run do not describe one run.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    /// Some field differs between nodes.
    #[error(
        "the trace headers disagree, so the files are not one run of one configuration \
         (record the run again with one configuration, or check its files separately): {}",
        .0.iter().map(ToString::to_string).collect::<Vec<_>>().join(" | ")
    )]
    Disagree(Vec<Disagreement>),
}

/// The one version, cluster and configuration of `traces`, or every field they disagree on.
pub fn run_header(traces: &[NodeTrace]) -> Result<RunHeader, HeaderError> {
    let version = agreed(traces, "version", |trace| {
        Some(trace.header.version.to_string())
    });
    let cluster = agreed(traces, "cluster", |trace| trace.header.cluster.clone());
    let stated = agreed(traces, "config", |trace| {
        Some(trace.header.config.is_some().to_string())
    });
    let mut disagreements: Vec<Disagreement> = [&version, &cluster, &stated]
        .into_iter()
        .filter_map(|field| field.as_ref().err().cloned())
        .collect();
    if matches!(&stated, Ok(Some(value)) if value == "true") {
        disagreements.extend(config_disagreements(traces));
    }
    match (version, cluster) {
        (Ok(version), Ok(cluster)) if disagreements.is_empty() => Ok(RunHeader {
            version: version.map_or(SCHEMA_VERSION, |text| {
                text.parse().expect("a version is a number")
            }),
            cluster,
            config: config_of(traces),
        }),
        _ => Err(HeaderError::Disagree(disagreements)),
    }
}

/// The value every trace states for `field` (`None` when none states one), or the disagreement.
fn agreed(
    traces: &[NodeTrace],
    field: &str,
    value: impl Fn(&NodeTrace) -> Option<String>,
) -> Result<Option<String>, Disagreement> {
    let mut nodes_by_value: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for trace in traces {
        if let Some(value) = value(trace) {
            nodes_by_value
                .entry(value)
                .or_default()
                .push(trace.header.node.clone());
        }
    }
    match nodes_by_value.len() {
        0 => Ok(None),
        1 => Ok(nodes_by_value.into_keys().next()),
        _ => Err(Disagreement {
            field: field.to_string(),
            values: nodes_by_value.into_iter().collect(),
        }),
    }
}

/// Every field of the stated configurations on which two headers differ.
fn config_disagreements(traces: &[NodeTrace]) -> Vec<Disagreement> {
    let fields = |trace: &NodeTrace| match serde_json::to_value(&trace.header.config) {
        Ok(serde_json::Value::Object(fields)) => fields,
        _ => serde_json::Map::new(),
    };
    let names: Vec<String> = traces
        .first()
        .map(fields)
        .unwrap_or_default()
        .keys()
        .cloned()
        .collect();
    names
        .iter()
        .filter_map(|name| {
            agreed(traces, &format!("config.{name}"), |trace| {
                Some(
                    fields(trace)
                        .get(name)
                        .map_or_else(|| "absent".to_string(), ToString::to_string),
                )
            })
            .err()
        })
        .collect()
}

/// The stated configuration, or for headers that state none the default with the masters'
/// count of the master traces.
fn config_of(traces: &[NodeTrace]) -> core::Config {
    if let Some(config) = traces.iter().find_map(|trace| trace.header.config.clone()) {
        return config;
    }
    let masters = traces
        .iter()
        .filter(|trace| trace.header.node.starts_with('m'))
        .count() as u64;
    core::Config {
        masters,
        ..core::Config::default()
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::trace::Header;

    fn trace(node: &str, cluster: &str, config: &core::Config) -> NodeTrace {
        NodeTrace {
            path: PathBuf::from(format!("{node}.ndjson")),
            header: Header::new(node, cluster, config),
            events: Vec::new(),
        }
    }

    fn run(configs: &[(&str, core::Config)]) -> Vec<NodeTrace> {
        configs
            .iter()
            .map(|(node, config)| trace(node, "local", config))
            .collect()
    }

    #[test]
    fn headers_that_agree_give_their_configuration() {
        let config = core::Config {
            masters: 3,
            ..core::Config::default()
        };
        let traces = run(&[
            ("m0", config.clone()),
            ("m1", config.clone()),
            ("p1", config.clone()),
        ]);
        let header = run_header(&traces).unwrap();
        assert_eq!(header.config, config);
        assert_eq!(header.cluster.as_deref(), Some("local"));
        assert_eq!(header.version, SCHEMA_VERSION);
    }

    #[test]
    fn a_field_that_differs_names_the_field_the_values_and_the_nodes() {
        let config = core::Config::default();
        let slower = core::Config {
            heartbeat_interval_ticks: config.heartbeat_interval_ticks + 2,
            election_timeout_ticks: config.election_timeout_ticks + 5,
            ..config.clone()
        };
        let traces = run(&[
            ("m0", config.clone()),
            ("m1", slower),
            ("p1", config.clone()),
        ]);
        let HeaderError::Disagree(disagreements) = run_header(&traces).unwrap_err();
        let fields: Vec<&str> = disagreements.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "config.election_timeout_ticks",
                "config.heartbeat_interval_ticks"
            ]
        );
        let mut expected = vec![
            (
                config.heartbeat_interval_ticks.to_string(),
                vec!["m0".to_string(), "p1".to_string()],
            ),
            (
                (config.heartbeat_interval_ticks + 2).to_string(),
                vec!["m1".to_string()],
            ),
        ];
        expected.sort();
        assert_eq!(disagreements[1].values, expected);
    }

    #[test]
    fn a_cluster_that_differs_is_an_error_naming_the_nodes() {
        let config = core::Config::default();
        let traces = vec![trace("m0", "local", &config), trace("m1", "other", &config)];
        let error = run_header(&traces).unwrap_err().to_string();
        assert!(
            error.contains("cluster: local at m0; other at m1"),
            "{error}"
        );
    }

    #[test]
    fn a_configuration_stated_by_some_headers_only_is_an_error() {
        let config = core::Config::default();
        let mut traces = run(&[("m0", config.clone()), ("m1", config)]);
        traces[1].header.config = None;
        let error = run_header(&traces).unwrap_err().to_string();
        assert!(error.contains("config: false at m1; true at m0"), "{error}");
    }

    #[test]
    fn mixed_schema_versions_are_an_error() {
        let config = core::Config::default();
        let mut traces = run(&[("m0", config.clone()), ("m1", config)]);
        traces[1].header.version = 2;
        let error = run_header(&traces).unwrap_err().to_string();
        assert!(
            error.contains(&format!("version: 2 at m1; {SCHEMA_VERSION} at m0")),
            "{error}"
        );
    }

    #[test]
    fn headers_without_configuration_count_the_master_traces() {
        let mut traces = run(&[
            ("m0", core::Config::default()),
            ("m1", core::Config::default()),
            ("m2", core::Config::default()),
            ("p1", core::Config::default()),
        ]);
        for trace in &mut traces {
            trace.header.config = None;
            trace.header.version = 1;
        }
        let header = run_header(&traces).unwrap();
        assert_eq!(header.config.masters, 3);
        assert_eq!(header.version, 1);
    }
}
