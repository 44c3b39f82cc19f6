//! Reading this test binary's counters: one Prometheus recorder per test binary, rendered and
//! searched, and a wait for a counter to move by exactly one.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// The recorder, installed on first use.
pub fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .install_recorder()
            .expect("one recorder per test binary")
    })
}

/// The value of counter `name` with all of `labels` (`key="value"` strings), 0 if absent.
pub fn counter(name: &str, labels: &[&str]) -> u64 {
    recorder()
        .render()
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|value| value as u64)
        .sum()
}

/// The value of gauge `name` without labels, 0 if absent.
#[allow(dead_code)] // not every test binary reads a gauge
pub fn gauge(name: &str) -> f64 {
    recorder()
        .render()
        .lines()
        .find(|line| line.starts_with(&format!("{name} ")))
        .and_then(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// Runs `action` and checks that counter `name{labels}` went up by exactly one.
pub async fn expect_counted<F: std::future::Future<Output = ()>>(
    name: &str,
    labels: &[&str],
    action: F,
) {
    let before = counter(name, labels);
    action.await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while counter(name, labels) == before {
        assert!(Instant::now() < deadline, "{name}{labels:?} not counted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(counter(name, labels), before + 1, "{name}{labels:?}");
}
