//! Which DynamoDB lease tables can decide leadership across regions.
//!
//! A lease is only as exclusive as the store's conditional writes. A global table with
//! **multi-Region eventual consistency** (the default, `EVENTUAL`) checks each condition
//! against its own replica and merges replicas later, newest write wins: a region cut off
//! from the others keeps renewing on its replica while another region's replica sees the
//! beat stop and lets a contender take the lease. Two leaders, one per region.
//!
//! Safe lease tables:
//! - a table with no replica (a home-region table that every region's engines use:
//!   `dynamodb://TABLE?region=HOME`), or
//! - a global table with **multi-Region strong consistency** (`MultiRegionConsistency:
//!   STRONG`, three replicas or two and a witness): a write commits only on a majority of
//!   regions, so a region cut off from the others can no longer renew.
//!
//! [`check`] refuses anything else before the store is used. Global tables of the
//! deprecated version 2017.11.29 do not show their replicas in `DescribeTable` and are
//! not detected.

use crate::store::LeaseError;
use aws_sdk_dynamodb::types::{MultiRegionConsistency, TableDescription};

/// `Ok` when conditional writes on `table` are exclusive across every region it is
/// replicated to; otherwise [`LeaseError::EventualGlobalTable`] naming the replicas.
///
/// Any replica makes it a global table: `DescribeTable` may list only the replicas in
/// other regions than the one asked, so one is enough.
pub fn check(table: &str, description: &TableDescription) -> Result<(), LeaseError> {
    let regions: Vec<String> = description
        .replicas()
        .iter()
        .filter_map(|r| r.region_name().map(str::to_string))
        .collect();
    if regions.is_empty() && description.global_table_version().is_none() {
        return Ok(());
    }
    match description.multi_region_consistency() {
        Some(MultiRegionConsistency::Strong) => Ok(()),
        _ => Err(LeaseError::EventualGlobalTable {
            table: table.to_string(),
            regions: if regions.is_empty() {
                "replicas not listed".into()
            } else {
                regions.join(", ")
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::ReplicaDescription;

    fn table(regions: &[&str], consistency: Option<MultiRegionConsistency>) -> TableDescription {
        let mut b = TableDescription::builder().table_name("fix-leases");
        for r in regions {
            b = b.replicas(ReplicaDescription::builder().region_name(*r).build());
        }
        if let Some(c) = consistency {
            b = b.multi_region_consistency(c);
        }
        b.build()
    }

    #[test]
    fn a_table_without_replicas_is_safe() {
        assert!(check("t", &table(&[], None)).is_ok());
    }

    #[test]
    fn one_listed_replica_is_a_global_table() {
        // Described in us-east-1, a two-region table may list only its us-west-2 replica.
        assert!(check("t", &table(&["us-west-2"], None)).is_err());
        let eventual = table(&["us-west-2"], Some(MultiRegionConsistency::Eventual));
        assert!(check("t", &eventual).is_err());
        let versioned = TableDescription::builder()
            .table_name("t")
            .global_table_version("2019.11.21")
            .build();
        assert!(check("t", &versioned).is_err());
    }

    #[test]
    fn a_strongly_consistent_global_table_is_safe() {
        let t = table(
            &["us-east-1", "us-east-2", "us-west-2"],
            Some(MultiRegionConsistency::Strong),
        );
        assert!(check("t", &t).is_ok());
    }

    #[test]
    fn an_eventually_consistent_global_table_is_refused_with_the_fix() {
        for consistency in [None, Some(MultiRegionConsistency::Eventual)] {
            let t = table(&["us-east-1", "us-west-2"], consistency);
            let e = check("fix-leases", &t).expect_err("refused").to_string();
            assert!(e.contains("fix-leases"), "{e}");
            assert!(e.contains("us-east-1, us-west-2"), "{e}");
            assert!(e.contains("STRONG"), "{e}");
            assert!(e.contains("region="), "{e}");
        }
    }
}
