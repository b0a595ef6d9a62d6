//! In-memory implementations of the ports: written next, with the unit tests of the rules.
