import torch

from model.network import PAD, SentimentConfig, SentimentLSTM
from model.scorer import collate


def _network(**overrides):
    torch.manual_seed(0)
    config = SentimentConfig(vocab_size=50, ngram_size=80, embed_dim=8, hidden_dim=8, dropout=0.0,
                             **overrides)
    return SentimentLSTM(config).eval()


def test_output_does_not_depend_on_padding():
    # The classic bug reads the LSTM state at a padded position: a short review
    # batched with a long one would then score differently than alone.
    network = _network()
    short = ([5, 6, 7], [5, 6, 7, 60])
    long = ([8] * 40, [8, 70])
    with torch.no_grad():
        alone = network(*collate([short]))
        batched = network(*collate([long, short]))
    assert torch.allclose(alone[0], batched[1], atol=1e-6)
    assert collate([long, short])[0][1, 3:].eq(PAD).all()  # it really was padded


def test_order_matters_to_the_lstm():
    network = _network()
    with torch.no_grad():
        a = network(*collate([([5, 6, 7, 8], [5])]))
        b = network(*collate([([8, 7, 6, 5], [5])]))
    assert not torch.allclose(a, b)


def test_bag_only_network_for_ablation():
    network = _network(use_lstm=False)
    with torch.no_grad():
        out = network(*collate([([5, 6], [5, 6, 60]), ([7], [7])]))
    assert out.shape == (2,)


def test_length_gate_weighs_each_branch_by_the_review_length():
    plain, gated = _network(), _network(length_gate=True)
    batch = collate([([5, 6, 7], [5, 6, 7, 60]), ([8] * 40, [8, 70])])
    with torch.no_grad():
        assert torch.allclose(plain(*batch), gated(*batch))  # until the blend sets it, each branch counts once
        gated.gate.copy_(torch.tensor([0.0, 0.0, 1.0, 0.0]))  # the LSTM alone
        lstm_only = gated(*batch)
        bag = plain.bag_logits(batch[2], batch[3])
        assert torch.allclose(lstm_only, plain(*batch) - bag)
        gated.gate.copy_(torch.tensor([1.0, -1.0, 0.0, 0.0]))  # the bag, only on one-word reviews (log 1 = 0)
        one_word = collate([([5], [5])])
        assert torch.allclose(gated(*one_word), plain.bag_logits(one_word[2], one_word[3]))
        assert torch.allclose(gated(*batch), torch.zeros(2))  # longer: the weight is clamped at 0


def test_adversarial_training_moves_each_text_by_its_norm_along_the_loss_gradient():
    from model.train import train_epoch

    class Bar(list):
        def set_postfix(self, **_):
            pass

    batch = collate([([5, 6, 7], [5]), ([8] * 6, [8])])
    tokens, lengths, ngrams, offsets = batch
    targets = torch.tensor([1.0, 0.0])
    seen = []
    network = _network()
    forward = network.forward

    def watched(*args, embedding_noise=None, **kwargs):
        seen.append(embedding_noise)
        return forward(*args, embedding_noise=embedding_noise, **kwargs)

    network.forward = watched
    bag_logits = network.bag_logits(ngrams, offsets).detach()
    train_epoch(network, torch.optim.SGD(network.parameters(), lr=0.0), Bar([(tokens, lengths, bag_logits, targets)]),
                adversarial=2.0)
    clean, worst = seen
    assert clean.abs().sum() == 0 and worst is not None
    assert torch.allclose(worst.flatten(1).norm(dim=1), torch.tensor([2.0, 2.0]))  # each text moved by 2.0
    assert worst[0, 3:].abs().sum() == 0  # the short text's padding is not moved
    with torch.no_grad():  # and the move raises the loss, as the worst small change should
        loss = torch.nn.functional.binary_cross_entropy_with_logits
        network.forward = forward
        assert loss(network(tokens, lengths, bag_logits=bag_logits, embedding_noise=worst), targets) > \
            loss(network(tokens, lengths, bag_logits=bag_logits), targets)
