//! A pinned witness path: the shortest way (BFS) to `wrong_cluster_answered`, so that any change
//! to how the proxy answers a wrong cluster shows up as a diff here.

use stateright::{Checker, Model};
use vigil_model::message::Message;
use vigil_model::presets::{self, WRONG_CLUSTER};
use vigil_model::types::{Operation, RequestError};
use vigil_model::{Action, Endpoint};

#[test]
fn wrong_cluster_answered_has_a_pinned_shortest_path() {
    let mut config = presets::for_bug(vigil_model::Bug::ErrorPathLeak).config;
    config.bugs.clear();
    let checker = config.checker().spawn_bfs().join();
    let path = checker
        .discovery("wrong_cluster_answered")
        .expect("a witness");
    let operation = Operation::Get { key: 0 };
    assert_eq!(
        path.into_actions(),
        vec![
            Action::ClientRequest(0),
            Action::Deliver {
                source: Endpoint::Client(0),
                destination: Endpoint::Proxy,
                message: Message::Request {
                    request_id: 0,
                    cluster: WRONG_CLUSTER,
                    operation
                },
            },
            Action::Deliver {
                source: Endpoint::Proxy,
                destination: Endpoint::Client(0),
                message: Message::Reply {
                    request_id: 0,
                    outcome: Err(RequestError::UnknownCluster)
                },
            },
        ]
    );
}
