//! The `coresh` binary: the shell. `serve`, `load` and `lab` go to `coresh-node`
//! beside it, so the shell starts without the daemon's code ([`coresh::invocation`]).

fn main() -> std::process::ExitCode {
    coresh::invocation::main(coresh::invocation::node::exec)
}
