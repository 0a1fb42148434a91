//! The `skiff` binary: parses the command line and runs one role.

fn main() {
    std::process::exit(2);
}
