//! Words and numbers as people read them, shared by error messages and pages.

use crate::imaging::ImageType;

/// `12.3 MB`: sizes as people read them (decimal megabytes, as phones and file managers show).
pub fn human_bytes(n: u64) -> String {
    #[expect(clippy::cast_precision_loss, reason = "display only; sizes are far below 2^52")]
    let x = n as f64;
    if n >= 1_000_000 {
        // "50 MB" rather than "50.0 MB": quotas and limits are usually round.
        let mb = format!("{:.1}", x / 1e6);
        format!("{} MB", mb.strip_suffix(".0").unwrap_or(&mb))
    } else if n >= 1_000 {
        format!("{:.0} KB", x / 1e3)
    } else {
        format!("{n} bytes")
    }
}

/// `JPEG, PNG or WebP`: a list of image types as a sentence would say it.
pub fn type_list(types: &[ImageType]) -> String {
    let names: Vec<&str> = types.iter().map(|t| t.name()).collect();
    match names.split_last() {
        None => "an image".into(),
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_a_file_manager() {
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(2_600), "3 KB");
        assert_eq!(human_bytes(10 * 1024 * 1024), "10.5 MB");
        assert_eq!(human_bytes(50_000_000), "50 MB");
        assert_eq!(human_bytes(3_249_999), "3.2 MB");
    }

    #[test]
    fn type_lists_read_as_a_sentence() {
        assert_eq!(type_list(&[ImageType::Jpeg]), "JPEG");
        assert_eq!(type_list(&[ImageType::Jpeg, ImageType::Png, ImageType::Webp]), "JPEG, PNG or WebP");
    }
}
