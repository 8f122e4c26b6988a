"""Text helpers for pretrained_word_embeddings.py: Keras 2's Tokenizer (gone from Keras
3), readers for the GloVe text file and the 20 Newsgroups folder as the original
example reads them, and a SYNTHETIC stand-in for both."""
from __future__ import annotations

import os

import numpy as np

FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'


def text_to_word_sequence(text: str, filters: str = FILTERS, lower: bool = True, split: str = " ") -> list:
    """keras.preprocessing.text.text_to_word_sequence of Keras 2."""
    if lower:
        text = text.lower()
    text = text.translate(str.maketrans({c: split for c in filters}))
    return [word for word in text.split(split) if word]


class Tokenizer:
    """keras.preprocessing.text.Tokenizer of Keras 2 (without an OOV token): words indexed
    from 1 by decreasing frequency; texts_to_sequences keeps indices below num_words."""

    def __init__(self, num_words=None):
        self.num_words = num_words
        self.word_counts: dict = {}
        self.word_index: dict = {}

    def fit_on_texts(self, texts):
        for text in texts:
            for word in text_to_word_sequence(text):
                self.word_counts[word] = self.word_counts.get(word, 0) + 1
        by_count = sorted(self.word_counts.items(), key=lambda item: item[1], reverse=True)  # stable: ties keep order
        self.word_index = {word: i for i, (word, _) in enumerate(by_count, start=1)}

    def texts_to_sequences(self, texts) -> list:
        sequences = []
        for text in texts:
            indices = (self.word_index.get(word) for word in text_to_word_sequence(text))
            sequences.append([i for i in indices if i is not None and not (self.num_words and i >= self.num_words)])
        return sequences


def read_glove(path: str) -> dict:
    """{word: float32 vector} from a GloVe text file (word, then the coefficients, a line)."""
    embeddings_index = {}
    with open(path, encoding="utf8") as f:
        for line in f:
            values = line.split()
            embeddings_index[values[0]] = np.asarray(values[1:], dtype="float32")
    return embeddings_index


def read_newsgroups(folder: str):
    """(texts, labels, labels_index) from the 20_newsgroup folder: one subfolder a class,
    files with numeric names; the header (up to the first blank line) is skipped."""
    texts, labels, labels_index = [], [], {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.isdir(path):
            label_id = len(labels_index)
            labels_index[name] = label_id
            for fname in sorted(os.listdir(path)):
                if fname.isdigit():
                    with open(os.path.join(path, fname), encoding="latin-1") as f:
                        t = f.read()
                    i = t.find("\n\n")  # skip header
                    if 0 < i:
                        t = t[i:]
                    texts.append(t)
                    labels.append(label_id)
    return texts, labels, labels_index


def synthetic_newsgroups(n_texts: int = 2000, n_classes: int = 20, dim: int = 100, seed: int = 0):
    """A SYNTHETIC corpus and word vectors shaped like 20 Newsgroups and GloVe:
    (texts, labels, labels_index, embeddings_index). Each class has 60 topic words;
    a text is 80 to 400 words drawn from 6000 common made-up words (Zipf-distributed)
    with one in ten from its class's topics. Topic words of a class get vectors near a
    common centre, as related words do in GloVe; common words get random vectors."""
    rng = np.random.default_rng(2000 + seed)
    words = _made_up_words(rng, 6000 + 60 * n_classes)
    common, topics = np.array(words[:6000]), np.array(words[6000:]).reshape(n_classes, 60)
    zipf = 1.0 / np.arange(1, len(common) + 1)
    zipf /= zipf.sum()
    texts, labels = [], []
    for _ in range(n_texts):
        label = int(rng.integers(n_classes))
        length = int(rng.integers(80, 401))
        from_topic = rng.random(length) < 0.1
        chosen = np.where(from_topic, topics[label][rng.integers(0, 60, length)],
                          common[rng.choice(len(common), length, p=zipf)])
        texts.append(" ".join(chosen))
        labels.append(label)
    labels_index = {f"synthetic.topic{c:02d}": c for c in range(n_classes)}
    embeddings_index = {w: rng.normal(0, 0.4, dim).astype("float32") for w in common}
    for c in range(n_classes):
        centre = rng.normal(0, 0.4, dim)
        for w in topics[c]:
            embeddings_index[w] = (centre + rng.normal(0, 0.2, dim)).astype("float32")
    return texts, labels, labels_index, embeddings_index


def _made_up_words(rng, n: int) -> list:
    consonants, vowels = list("bcdfghjklmnprstvz"), list("aeiou")
    words: dict = {}
    while len(words) < n:
        syllables = rng.integers(1, 4)
        word = "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(syllables))
        words.setdefault(word, None)
    return list(words)
