//! Synthetic case data: the demo authority (`cpwatch demo`) and casework of
//! any size (`cpwatch seed`), each reproducible from its seed and instant.

pub mod demo;
