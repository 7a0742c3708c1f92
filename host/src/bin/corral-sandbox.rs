//! The shell sandbox's helper on its own: what `corral __sandbox-exec` does, in a small
//! executable that starts several times faster than the whole `corral` binary. corral runs it
//! when it sits beside corral's own executable ([`corral::sandbox`]); nobody else needs to.

fn main() {
    corral::sandbox::exec_if_helper();
    eprintln!("corral-sandbox: the shell sandbox's helper; corral runs it, with its arguments");
    std::process::exit(2);
}
