//! A spinner on stderr that counts the rows worker 0 has read of a large input; drawn only
//! when asked for (stderr is a terminal and not `--quiet`).

pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    pub fn new(enabled: bool) -> Progress {
        Progress {
            bar: enabled.then(|| {
                let bar = indicatif::ProgressBar::new_spinner();
                let style = indicatif::ProgressStyle::with_template(
                    "{spinner} reading {msg}: {human_pos} rows of this worker's share, {elapsed}",
                );
                if let Ok(style) = style {
                    bar.set_style(style);
                }
                bar
            }),
        }
    }

    pub fn show(&mut self, inputs: &[String], rows: u64) {
        if let Some(bar) = &self.bar {
            if bar.position() == 0 {
                bar.set_message(inputs.join(", "));
            }
            bar.set_position(rows);
        }
    }

    pub fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
