//! Fit MMQ on two synthetic modalities (text-like and audio-like), encode unseen items, and
//! save and reload the tokenizer.
use semid::data::synth::{generate, SynthConfig};
use semid::pipeline::joint_input;
use semid::{AnyTokenizer, Gpu, Mmq, MmqConfig, Tokenizer};

fn main() -> anyhow::Result<()> {
    let gpu = Gpu::default_device()?;
    let data = generate(&SynthConfig {
        items: 1200,
        ..Default::default()
    })?;
    // The modalities side by side, each row L2-normalised, as `semid tokenize` feeds MMQ.
    let mods: Vec<_> = data.embeddings.modalities.iter().collect();
    let input = joint_input(&mods, true);
    let (train, unseen) = input.data.split_at(1000 * input.dim);
    let cfg = MmqConfig {
        latent: 64,
        k: 32,
        epochs: 20,
        batch_size: 250,
        ..Default::default()
    };
    let (mmq, codes) = Mmq::fit(&gpu, train, &input.parts, &cfg)?;
    let new_codes = mmq.encode(&gpu, unseen)?;
    println!(
        "{} tokens per item (shared, then per modality); item 0: {:?}; first unseen: {:?}",
        codes.levels,
        codes.item(0),
        new_codes.item(0)
    );
    let path = std::env::temp_dir().join("semid-example-mmq.safetensors");
    AnyTokenizer::Mmq(mmq).save(&path, "example")?;
    let (reloaded, _) = AnyTokenizer::load(&path)?;
    assert_eq!(reloaded.encode(&gpu, unseen)?, new_codes);
    println!(
        "saved, reloaded and re-encoded {} unseen items",
        new_codes.items()
    );
    Ok(())
}
