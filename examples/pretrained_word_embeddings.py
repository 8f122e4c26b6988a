"""Trains a text classifier on the 20 Newsgroups dataset over pre-trained GloVe word
embeddings in a frozen Embedding layer, with kcompile.

Keras 2.2's examples/pretrained_word_embeddings.py: texts tokenized (20000 most
frequent words) and padded to 1000 words; Embedding initialized with GloVe 100d and
frozen; Conv1D 128 5 relu, MaxPooling1D 5, Conv1D 128 5 relu, MaxPooling1D 5, Conv1D 128
5 relu, GlobalMaxPooling1D, Dense 128 relu, Dense softmax; rmsprop;
categorical_crossentropy; 20% of the texts held out for validation; batch 128,
10 epochs.

Model, optimizer, loss and preprocessing are the original's. --data DIR reads what the
original reads: DIR/glove.6B/glove.6B.100d.txt (or --glove FILE) and DIR/20_newsgroup
(or --texts DIR). Neither can be downloaded here, so without --data it uses a SYNTHETIC
corpus and SYNTHETIC word vectors shaped like them (2000 made-up texts in 20 classes,
see text_data.py). Both train the original's 10 epochs at batch 128. The stand-in's
accuracy says nothing about 20 Newsgroups.

    python examples/pretrained_word_embeddings.py            # synthetic stand-in
    python examples/pretrained_word_embeddings.py --data ~/data   # ~/data/glove.6B, ~/data/20_newsgroup
    python examples/pretrained_word_embeddings.py --quick --compare-keras
"""
import os

import numpy as np

import common
import text_data

ORIGINAL = {"epochs": 10, "batch_size": 128}
STAND_IN = {"epochs": 10, "batch_size": 128}
MAX_SEQUENCE_LENGTH = 1000
MAX_NUM_WORDS = 20000
EMBEDDING_DIM = 100
VALIDATION_SPLIT = 0.2


def add_arguments(parser):
    parser.add_argument("--glove", metavar="FILE", help="the GloVe file (default: DATA/glove.6B/glove.6B.100d.txt)")
    parser.add_argument("--texts", metavar="DIR", help="the 20 Newsgroups folder (default: DATA/20_newsgroup)")


def load_texts(args):
    """(texts, labels, labels_index, embeddings_index, description, stand_in)"""
    if args.data or args.glove or args.texts:
        base = os.path.expanduser(args.data or ".")
        glove = args.glove or os.path.join(base, "glove.6B", "glove.6B.100d.txt")
        if not os.path.exists(glove):
            glove = os.path.join(base, "glove.6B.100d.txt")
        folder = args.texts or os.path.join(base, "20_newsgroup")
        print("Indexing word vectors.")
        embeddings_index = text_data.read_glove(glove)
        print("Found %s word vectors." % len(embeddings_index))
        print("Processing text dataset")
        texts, labels, labels_index = text_data.read_newsgroups(folder)
        return texts, labels, labels_index, embeddings_index, f"20 Newsgroups from {folder}, GloVe from {glove}", False
    texts, labels, labels_index, embeddings_index = text_data.synthetic_newsgroups(seed=args.seed)
    return (texts, labels, labels_index, embeddings_index, "SYNTHETIC texts and word vectors shaped like 20 "
            "Newsgroups and GloVe 100d (pass --data for the real ones)", True)


def main(argv=None):
    args = common.parse_args("pretrained_word_embeddings", __doc__, add_arguments, argv=argv)
    import keras

    texts, labels, labels_index, embeddings_index, description, stand_in = load_texts(args)
    print("Found %s texts." % len(texts))

    # vectorize the text samples into a 2D integer tensor
    tokenizer = text_data.Tokenizer(num_words=MAX_NUM_WORDS)
    tokenizer.fit_on_texts(texts)
    sequences = tokenizer.texts_to_sequences(texts)
    word_index = tokenizer.word_index
    print("Found %s unique tokens." % len(word_index))
    data = keras.utils.pad_sequences(sequences, maxlen=MAX_SEQUENCE_LENGTH)
    labels = keras.utils.to_categorical(np.asarray(labels))
    print("Shape of data tensor:", data.shape)
    print("Shape of label tensor:", labels.shape)

    # split the data into a training set and a validation set
    indices = np.arange(data.shape[0])
    np.random.default_rng(args.seed).shuffle(indices)
    data, labels = data[indices], labels[indices]
    num_validation_samples = int(VALIDATION_SPLIT * data.shape[0])
    split = common.Data((data[:-num_validation_samples], labels[:-num_validation_samples]),
                        (data[-num_validation_samples:], labels[-num_validation_samples:]), description, stand_in)
    split = common.use(split, args, quick=(128, 64))
    epochs, batch_size = common.settings(args, split, ORIGINAL, STAND_IN)
    (x_train, y_train), (x_val, y_val) = split.splits()

    print("Preparing embedding matrix.")
    num_words = min(MAX_NUM_WORDS, len(word_index) + 1)
    embedding_matrix = np.zeros((num_words, EMBEDDING_DIM))
    for word, i in word_index.items():
        if i >= MAX_NUM_WORDS:
            continue
        embedding_vector = embeddings_index.get(word)
        if embedding_vector is not None:
            # words not found in embedding index will be all-zeros.
            embedding_matrix[i] = embedding_vector

    # load pre-trained word embeddings into a frozen Embedding layer (the original passes
    # embeddings_initializer=Constant(embedding_matrix), which Keras 3 would write into the
    # model's config; weights= sets the same initial values)
    keras.utils.set_random_seed(args.seed)
    embedding_layer = keras.layers.Embedding(num_words, EMBEDDING_DIM, weights=[embedding_matrix], trainable=False)

    print("Training model.")
    # train a 1D convnet with global maxpooling
    sequence_input = keras.Input(shape=(MAX_SEQUENCE_LENGTH,), dtype="int32")
    embedded_sequences = embedding_layer(sequence_input)
    x = keras.layers.Conv1D(128, 5, activation="relu")(embedded_sequences)
    x = keras.layers.MaxPooling1D(5)(x)
    x = keras.layers.Conv1D(128, 5, activation="relu")(x)
    x = keras.layers.MaxPooling1D(5)(x)
    x = keras.layers.Conv1D(128, 5, activation="relu")(x)
    x = keras.layers.GlobalMaxPooling1D()(x)
    x = keras.layers.Dense(128, activation="relu")(x)
    preds = keras.layers.Dense(len(labels_index), activation="softmax")(x)
    model = keras.Model(sequence_input, preds)
    model.summary()

    run = common.Experiment(args, split)
    compiled = run.compile(model)  # kcompile.compile of the initial weights (OUT/initial.keras)
    compiled.compile(loss="categorical_crossentropy", optimizer="rmsprop", metrics=["acc"], seed=args.seed)
    model.compile(loss="categorical_crossentropy", optimizer="rmsprop", metrics=["acc"])
    run.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=1, validation_data=(x_val, y_val))
    run.evaluate(x_val, y_val)
    run.deploy(x_val.astype("int32"), batch_sizes=(1, 32))


if __name__ == "__main__":
    main()
