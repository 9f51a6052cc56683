"""The loss of MEAN (paper eq. 8, 11, 13-17): Huber on the scaled label plus the two alignment terms.

Every public function returns a scalar: the mean over the batch (and over any other leading axes) of a
per-example loss. `mean_loss` sums them over the horizons of a multi-horizon model and applies the
stop-gradient choices of `MEANConfig`.
"""
from __future__ import annotations

from typing import Dict

import mean_tf  # noqa: F401  (pins tf.keras to Keras 2 before TensorFlow loads)
import tensorflow as tf

from mean_tf.config import MEANConfig
from mean_tf.models.ziln_distribution import ziln_loss

KL_EPSILON = 1e-7


def huber(y, y_hat, delta: float = 1.0):
    """L^cltv (eq. 8): 0.5 (y - y_hat)^2 where |y - y_hat| <= delta, else delta (|y - y_hat| - delta / 2)."""
    error = tf.abs(tf.cast(y, tf.float32) - y_hat)
    quadratic = 0.5 * tf.square(error)
    linear = delta * (error - 0.5 * delta)
    return tf.reduce_mean(tf.where(error <= delta, quadratic, linear))


def alignment_kl(bucket_probs, attention_mean, epsilon: float = KL_EPSILON):
    """L^kl (eq. 13): sum_i b_hat_i log(b_hat_i / theta_hat_i), batch mean.

    Both distributions are clipped to [epsilon, 1] (as Keras' KLDivergence does), so an underflowed
    probability gives ~0 instead of 0 * log 0 = NaN. Stop-gradients are the caller's choice (see `mean_loss`).
    """
    b_hat = tf.clip_by_value(bucket_probs, epsilon, 1.0)
    theta_hat = tf.clip_by_value(attention_mean, epsilon, 1.0)
    return tf.reduce_mean(tf.reduce_sum(b_hat * tf.math.log(b_hat / theta_hat), axis=-1))


def cross_entropy(p, q, xi: float = 1e-8):
    """H(p, q) = -sum_i p_i log(q_i + xi) (eq. 15), per example."""
    return -tf.reduce_sum(p * tf.math.log(q + xi), axis=-1)


def tempered_softmax(o, temperature: float = 1.0):
    """sigma(o; T)_i = exp(o_i / T) / sum_j exp(o_j / T) (eq. 16)."""
    return tf.nn.softmax(o / temperature, axis=-1)


def distillation(bucket_onehot, bucket_logits, attention_mean, beta: float = 1.0, gamma: float = 1.0,
                 tau: float = 2.0, xi: float = 1e-8, teacher: str = "probs"):
    """L^dis (eq. 14): beta H(z, sigma(k; 1)) + gamma H(sigma(theta_hat; tau), sigma(k; tau)), batch mean.

    The hard term equals L_bucket of eq. 11 (up to xi). `teacher="probs"` applies the tempered softmax to
    theta_hat, which is already a probability vector, literally as eq. 14 writes it: its entries lie in
    [0, 1], so with tau = 2 the teacher is close to uniform (the largest probability ratio is at most
    e^(1/2) ~ 1.65) and the soft term mostly keeps DAM's sigma(k; tau) smooth. `teacher="log_probs"`
    reads theta_hat as the softmax of its logs, sigma(log theta_hat; tau) = theta_hat^(1/tau) normalised:
    the usual distillation of a tempered teacher (the likely intent).
    """
    hard = tf.reduce_mean(cross_entropy(bucket_onehot, tempered_softmax(bucket_logits, 1.0), xi))
    if gamma == 0:
        return beta * hard
    logits = tf.math.log(attention_mean + xi) if teacher == "log_probs" else attention_mean
    teacher = tempered_softmax(logits, tau)
    soft = tf.reduce_mean(cross_entropy(teacher, tempered_softmax(bucket_logits, tau), xi))
    return beta * hard + gamma * soft


def _per_horizon(tensor, num_horizons: int, horizon: int):
    """Horizon `horizon` of a per-horizon output: [B, n] when H = 1, [B, H, n] otherwise."""
    return tensor if num_horizons == 1 else tensor[:, horizon, :]


def mean_loss(targets: Dict[str, tf.Tensor], outputs: Dict[str, tf.Tensor], config: MEANConfig) -> Dict[str, tf.Tensor]:
    """L^MEAN = L^cltv + L^kl + L^dis (eq. 17), each term summed over the H horizons.

    targets: `scaled` [B, H] (float) and `bucket` [B, H] (int, 0..n-1); outputs of `MEAN.call`.
    Stop-gradients (config): `kl_stop_gradient_dam` makes b_hat a fixed target of L^kl (DAM guides the
    attention only); `distill_stop_gradient_attention` makes sigma(theta_hat; tau) a fixed teacher of the
    soft L^dis term (attention teaches DAM only). Ablations: `use_kl`, `use_soft_distillation` (gamma = 0)
    and `use_dam` (no L^kl, no L^dis). With `cltv_head="ziln"` (not the paper's) L^cltv is the ZILN loss on the
money label `raw` [B, H]. Returns {"loss", "loss_cltv", "loss_kl", "loss_dis"}.
    """
    num_horizons = len(config.labels)
    if config.cltv_head == "ziln":  # the extension beyond the paper: the ZILN NLL on money replaces eq. 8
        raw = tf.cast(targets["raw"], tf.float32)
        loss_cltv = tf.reduce_sum(tf.reduce_mean(ziln_loss(raw[..., None], outputs["ziln_logits"]), axis=0))
    else:
        scaled = tf.cast(targets["scaled"], tf.float32)
        loss_cltv = tf.add_n([huber(scaled[:, h], outputs["cltv"][:, h], config.huber_delta)
                              for h in range(num_horizons)])
    loss_kl = tf.constant(0.0)
    loss_dis = tf.constant(0.0)
    if config.use_dam:
        theta_hat = outputs["attention_mean"]
        teacher = tf.stop_gradient(theta_hat) if config.distill_stop_gradient_attention else theta_hat
        onehot = tf.one_hot(tf.cast(targets["bucket"], tf.int32), config.num_distributions)
        gamma = config.gamma if config.use_soft_distillation else 0.0
        kl_terms, dis_terms = [], []
        for h in range(num_horizons):
            b_hat = _per_horizon(outputs["bucket_probs"], num_horizons, h)
            if config.use_kl:
                target = tf.stop_gradient(b_hat) if config.kl_stop_gradient_dam else b_hat
                kl_terms.append(alignment_kl(target, theta_hat))
            dis_terms.append(distillation(onehot[:, h, :], _per_horizon(outputs["bucket_logits"], num_horizons, h),
                                          teacher, config.beta, gamma, config.tau, config.xi,
                                          config.distill_teacher))
        if kl_terms:
            loss_kl = tf.add_n(kl_terms)
        loss_dis = tf.add_n(dis_terms)
    return {"loss": loss_cltv + loss_kl + loss_dis, "loss_cltv": loss_cltv, "loss_kl": loss_kl, "loss_dis": loss_dis}
