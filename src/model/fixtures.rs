//! Test fixtures shared by the model's and the renderers' tests.

use std::sync::Arc;

use super::snapshot::{PartitionOffsets, TopicConfig, TopicSnapshot};

pub fn partition(partition: i32, earliest: i64, latest: i64) -> PartitionOffsets {
    PartitionOffsets {
        partition,
        earliest,
        latest,
    }
}

/// Topic `orders`: 3 partitions holding 0..10, 0..20 and 0..30, 1 h time retention; topic
/// `payments`: 2 partitions holding 5..9 and 0..3, retention unknown.
pub fn orders_and_payments() -> Vec<TopicSnapshot> {
    vec![
        TopicSnapshot {
            name: Arc::from("orders"),
            partitions: vec![
                partition(0, 0, 10),
                partition(1, 0, 20),
                partition(2, 0, 30),
            ],
            config: TopicConfig {
                retention_ms: Some(3_600_000),
                retention_bytes: Some(-1),
                cleanup_policy: Some("delete".into()),
            },
        },
        TopicSnapshot {
            name: Arc::from("payments"),
            partitions: vec![partition(0, 5, 9), partition(1, 0, 3)],
            config: TopicConfig::default(),
        },
    ]
}
