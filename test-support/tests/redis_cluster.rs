//! A real Redis Cluster: six nodes, three masters with a replica each.

use cache_test_support::{RedisCluster, Reply};
use std::process::Command;

fn process_exists(pid: u32) -> bool {
    Command::new("sh")
        .args(["-c", "kill -0 \"$1\" 2>/dev/null", "sh", &pid.to_string()])
        .status()
        .expect("cannot run sh")
        .success()
}

#[test]
fn a_cluster_of_three_masters_and_three_replicas_serves_keys_by_slot() {
    let cluster = RedisCluster::start();
    let masters = cluster.masters();
    assert_eq!(masters.len(), 3, "{masters:?}");
    let nodes = cluster.nodes()[0]
        .cmd(&["CLUSTER", "NODES"])
        .as_string()
        .expect("CLUSTER NODES");
    assert_eq!(
        nodes.lines().filter(|l| l.contains("master")).count(),
        3,
        "{nodes}"
    );
    assert_eq!(
        nodes.lines().filter(|l| l.contains("slave")).count(),
        3,
        "{nodes}"
    );
    for port in cluster.nodes().iter().map(|n| n.port()) {
        assert!(
            port < 55535,
            "bus port {} out of range",
            u32::from(port) + 10_000
        );
    }

    // A key is served by the master of its slot; the others redirect there.
    let mut served = 0;
    for key in ["alpha", "beta", "gamma", "delta", "epsilon"] {
        let mut owner = None;
        for &m in &masters {
            match cluster.nodes()[m].cmd(&["SET", key, "v"]) {
                Reply::Status(s) if s == "OK" => owner = Some(m),
                Reply::Error(e) => assert!(e.starts_with("MOVED "), "{e}"),
                other => panic!("{other:?}"),
            }
        }
        let owner = owner.expect("one master owns the slot");
        let got = cluster.nodes()[owner].cmd(&["GET", key]);
        assert_eq!(got.as_string().as_deref(), Some("v"));
        served += 1;
    }
    assert_eq!(served, 5);
    // `cmd` follows the redirections; `keys` looks on every master.
    for key in ["alpha", "beta", "gamma", "delta", "epsilon"] {
        assert_eq!(cluster.cmd(&["GET", key]).as_string().as_deref(), Some("v"));
    }
    assert_eq!(
        cluster.cmd(&["SET", "zeta", "w"]),
        Reply::Status("OK".into())
    );
    assert_eq!(
        cluster.keys("*"),
        ["alpha", "beta", "delta", "epsilon", "gamma", "zeta"]
    );
    assert_eq!(cluster.urls().len(), 6);

    let pids: Vec<u32> = cluster.nodes().iter().filter_map(|n| n.pid()).collect();
    assert_eq!(pids.len(), 6);
    drop(cluster);
    for pid in pids {
        assert!(!process_exists(pid), "node {pid} outlived the cluster");
    }
}
