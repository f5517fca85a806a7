//! Fit PSRQ on synthetic item embeddings, encode unseen items, save and reload the tokenizer.
use semid::data::synth::{generate, SynthConfig};
use semid::{AnyTokenizer, Gpu, Psrq, PsrqConfig, Tokenizer};

fn main() -> anyhow::Result<()> {
    let gpu = Gpu::default_device()?;
    let data = generate(&SynthConfig {
        items: 1200,
        ..Default::default()
    })?;
    let text = data.embeddings.modality("text").expect("a text modality");
    let (train, unseen) = text.data.split_at(1000 * text.dim);
    let cfg = PsrqConfig {
        k: 32,
        ..Default::default()
    };
    let (psrq, codes) = Psrq::fit(&gpu, train, text.dim, &cfg)?;
    let new_codes = psrq.encode(&gpu, unseen)?;
    println!(
        "item 0: {:?}; first unseen item: {:?}",
        codes.item(0),
        new_codes.item(0)
    );
    let path = std::env::temp_dir().join("semid-example-psrq.safetensors");
    AnyTokenizer::Psrq(psrq).save(&path, "example")?;
    let (reloaded, _) = AnyTokenizer::load(&path)?;
    assert_eq!(reloaded.encode(&gpu, unseen)?, new_codes);
    println!(
        "saved, reloaded and re-encoded {} unseen items",
        new_codes.items()
    );
    Ok(())
}
