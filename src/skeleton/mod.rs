//! Skeleton layouts, defined once; everything else derived from them.
//!
//! A [`Layout`] is an ordered list of joint names with one parent per joint
//! (NTU RGB+D's Kinect v2 25 joints, Kinect v1's 20 joints in NW-UCLA's and
//! in UTD-MHAD's order, COCO-17, MediaPipe BlazePose-33). From that table
//! alone this module derives edges and bones, the left/right flip, the edge
//! hash that model cards record ([`layout`]), the adjacency stacks of
//! CTR-GCN and ST-GCN ([`graph`]), the body parts of GAP and the masking
//! regions of SkeletonMAE ([`part`]), and mappings between layouts
//! ([`mapping`]).

pub mod graph;
pub mod layout;
pub mod mapping;
pub mod part;

pub use graph::Adjacency;
pub use layout::Layout;
