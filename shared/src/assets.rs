//! The front-end files in the repository's `static/` folder, embedded in both
//! binaries at build time so that they run from any working directory.

use std::borrow::Cow;

#[derive(rust_embed::RustEmbed)]
#[folder = "../static/"]
struct Static;

/// One embedded file.
#[derive(Debug, Clone)]
pub struct Asset {
    pub bytes: Cow<'static, [u8]>,
    /// Its MIME type, guessed from the extension.
    pub content_type: String,
}

/// The file at `path` below `static/` (for example `js/dashboard.js`), if any.
pub fn get(path: &str) -> Option<Asset> {
    let file = Static::get(path)?;
    let content_type = mime_guess::from_path(path)
        .first_or_octet_stream()
        .essence_str()
        .to_owned();
    Some(Asset {
        bytes: file.data,
        content_type,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_stylesheet_is_embedded_with_its_type() {
        let css = super::get("css/style.css").expect("static/css/style.css is embedded");
        assert_eq!(css.content_type, "text/css");
        assert!(super::get("nope/missing.js").is_none());
    }
}
