# Heroku sources this at dyno start: the Rust buildpack leaves the binary in target/release.
export PATH="$HOME/target/release:$PATH"
