//! The `coresh-node` binary: the daemon (`serve`), the load driver and the lab, and
//! everything the shell's binary runs too, for the daemon's children and the lab
//! ([`coresh::invocation`]).

fn main() -> std::process::ExitCode {
    coresh::invocation::main(coresh::invocation::node::run)
}
