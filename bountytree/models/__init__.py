"""Models: the layer types a spec may use, one entry each (`layers`), specs (`spec`), weights files
(`weights`), the training recipe (`training`), datasets (`datasets`), operation counts (`flops`),
the sound bound on a model's values (`bounds`), correct rows counted in plaintext with the rows every
machine decides alike (`counting`) and plaintext inference (`inference`). Below the
market; imports storage for CIDs only."""
