//! `vigil`: the coordination service's command line (masters, proxy, client commands).

fn main() {
    eprintln!("vigil: the service is not built yet (issue 4)");
    std::process::exit(2);
}
