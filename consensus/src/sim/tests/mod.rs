//! Tests of the simulator itself: each invariant checker catches a violation fed to
//! it, the network model behaves as documented, and scripted scenarios reproduce the
//! classic Raft failure modes (one regression scenario per file).

mod checkers;
mod figure8;
mod network_model;
