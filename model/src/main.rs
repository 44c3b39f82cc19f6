//! `vigil-model`: model-check, explore and list the seeded bugs of vigil's protocol model.

fn main() {
    eprintln!("vigil-model: the model is not built yet (issue 3)");
    std::process::exit(2);
}
