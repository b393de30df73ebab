//! Local ZooKeeper launcher.
