//! Build script: with feature `realsense`, puts the directory of the
//! librealsense2 that pkg-config finds (the one realsense-sys links) into
//! the rpath of every binary, test and example, so that they run without
//! `LD_LIBRARY_PATH` (`.ci/setup-librealsense.sh` installs the library
//! outside the system's search path). Without the feature it does nothing.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "realsense")]
    realsense_rpath();
}

#[cfg(feature = "realsense")]
fn realsense_rpath() {
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    let lib = match pkg_config::Config::new()
        .cargo_metadata(false)
        .probe("realsense2")
    {
        Ok(lib) => lib,
        Err(e) => {
            // realsense-sys fails the build with its own message; say how to fix it.
            println!(
                "cargo:warning=pkg-config cannot find realsense2 ({e}); \
                 run .ci/setup-librealsense.sh PREFIX and export PKG_CONFIG_PATH=PREFIX/lib/pkgconfig"
            );
            return;
        }
    };
    for dir in &lib.link_paths {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
    }
}
