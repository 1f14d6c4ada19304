//! Renders a kustomization directory: `cargo run -p eddy-kustomize --example render -- <dir>`.

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    match eddy_kustomize::render(std::path::Path::new(&dir), &Default::default()) {
        Ok(yaml) => print!("{yaml}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
