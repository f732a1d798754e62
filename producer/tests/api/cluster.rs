//! The durable outbox on a real 6-node Redis Cluster: a batch goes on when the
//! master holding the outbox crashes in its middle, and each task is delivered
//! once as a receiver that deduplicates counts it: a task whose outcome was being
//! written when the master died is sent again, with the same `webhook-id`. On a TLS
//! cluster, as the documented ACL user, a batch is delivered with its events.

use crate::durable::{summary_path, wait_for};
use crate::helpers::{Receiver, Reply, done, eventually, final_states, spawn_app};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use taskhooks_shared::testing::{AclUser, RedisCluster};

/// The key whose slot holds every key of the producer.
const KEY: &str = "{taskhooks:producer}:queue";

#[tokio::test]
async fn a_crashed_master_of_the_outbox_mid_batch_delivers_every_task_under_one_webhook_id() {
    let mut cluster = RedisCluster::start().await;
    let mut receiver = Receiver::start([]).await;
    let urls = cluster.urls();
    let flags = [
        "--redis-cluster-urls",
        &urls,
        "--claim-after",
        "1s",
        "--pace-ms",
        "50",
    ];
    let app = spawn_app(&receiver, &flags).await;
    let (status, ready) = app.call("GET", "/readyz", None).await;
    assert_eq!(
        (status, &ready["store"]),
        (200, &json!("redis-cluster")),
        "{ready}"
    );
    let batch = app.start(json!({"min": 40, "max": 40})).await;
    let mut received = receiver.take(10).await;

    let master = cluster.master_of(KEY).await;
    cluster.kill(master).await;
    cluster.wait_for_failover(KEY, master).await;
    // The promoted master has no replica until the crashed one rejoins as one: not
    // ready, and says why.
    eventually(
        "/readyz to say the outbox's master has no replica",
        || async {
            let (status, ready) = app.call("GET", "/readyz", None).await;
            let why = ready["error"].as_str().unwrap_or_default().to_owned();
            if status == 503 && why.contains("REDIS_WAIT_REPLICAS") {
                Ok(())
            } else {
                let now = cluster.master_of(KEY).await;
                let mut conn = cluster.connection_to(now).await;
                let info: String = redis::cmd("INFO")
                    .arg("replication")
                    .query_async(&mut conn)
                    .await
                    .unwrap_or_default();
                Err(format!(
                    "{status} {ready} killed {master} now {now}: {info}"
                ))
            }
        },
    )
    .await;
    cluster.restart(master).await;
    let summary = wait_for(&app, &summary_path(&batch), |b| b["state"] == "done").await;
    assert_eq!(
        (summary["delivered"].as_u64(), summary["failed"].as_u64()),
        (Some(40), Some(0)),
        "{summary}"
    );
    received.extend(receiver.take(30).await);
    received.extend(receiver.drain(Duration::from_secs(2)).await);

    let mut ids: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    for request in &received {
        let task = request.task.as_ref().expect("a task");
        let id = request.webhook_id.clone().expect("a webhook id");
        ids.entry(task.id).or_default().insert(id);
    }
    assert_eq!(ids.len(), 40, "every task arrived");
    assert!(
        ids.values().all(|ids| ids.len() == 1),
        "a task sent again keeps its webhook id, so a receiver counts it once: {ids:?}"
    );

    // Redelivery on the cluster: the requeue script, then the task again.
    let redeliver = format!("/batches/{}/redeliver", batch.batchid);
    let (status, body) = app.call("POST", &redeliver, Some(r#"{"tasks":[0]}"#)).await;
    assert_eq!(status, 202, "{body}");
    let again = receiver.next().await;
    let task = again.task.as_ref().expect("a task");
    let first_ids = &ids[&task.id];
    assert!(
        first_ids.contains(again.webhook_id.as_deref().unwrap_or_default()),
        "redelivered under its webhook id: {again:?}"
    );
    wait_for(&app, &summary_path(&batch), |b| {
        b["state"] == "done" && b["delivered"] == 40
    })
    .await;
}

#[tokio::test]
async fn on_a_tls_cluster_as_the_documented_user_a_batch_is_delivered_with_its_events() {
    let cluster = RedisCluster::start_tls().await;
    let user = AclUser::documented("taskhooks-producer");
    cluster.add_user(&user).await;
    let mut receiver = Receiver::start([Reply::status(503)]).await;
    let (urls, ca) = (cluster.urls_as(&user), cluster.ca_cert());
    let ca = ca.display().to_string();
    let flags = ["--redis-cluster-urls", &urls, "--redis-ca-cert", &ca];
    let app = spawn_app(&receiver, &flags).await;
    let (status, ready) = app.call("GET", "/readyz", None).await;

    let batch = app.start(json!({"min": 4, "max": 4})).await;
    let events = app.all_events(&batch).await;
    let received = receiver.take(5).await;

    assert_eq!(
        (status, &ready["store"]),
        (200, &json!("redis-cluster")),
        "{ready}"
    );
    assert_eq!(done(&events)["delivered"], 4);
    let states: Vec<_> = final_states(&events)
        .iter()
        .map(|task| task["state"].clone())
        .collect();
    assert_eq!(states, vec![json!("delivered"); 4]);
    let ids: BTreeSet<u64> = received
        .iter()
        .map(|request| request.task.as_ref().expect("a task").id)
        .collect();
    assert_eq!(
        ids.len(),
        4,
        "four tasks, one of them retried: {received:?}"
    );
    assert!(received.iter().all(|request| request.verified.is_ok()));
}
