//! Domain correction after ASR (pinyin similarity onto the domain lexicon).
