/**
 * Batch normalization that trains as PyTorch's BatchNorm2d does. tfjs's
 * layer (like Keras's) updates its moving variance with the batch's biased
 * variance; PyTorch updates `running_var` with the unbiased one (Bessel's
 * correction, n / (n − 1) for n values per channel), which is what a
 * model fine-tuned in PyTorch carries. Normalisation in training uses the
 * biased variance in both, and inference is unchanged.
 *
 * The layer keeps tfjs's class name, so saved models read and write the
 * same model.json as before: importing this module registers it in place of
 * tfjs's BatchNormalization for every model built or loaded afterwards.
 */
import * as tf from '@tensorflow/tfjs';

type BatchNormArgs = Parameters<typeof tf.layers.batchNormalization>[0];
type LayerKwargs = Record<string, unknown>;

/** tfjs's BatchNormalization class (the layers API exports its factory only). */
const TfjsBatchNormalization = Object.getPrototypeOf(tf.layers.batchNormalization({})).constructor as {
  new (args?: BatchNormArgs): tf.layers.Layer;
};

interface BatchNormState {
  axis: number;
  momentum: number;
  epsilon: number;
  gamma: tf.LayerVariable | null;
  beta: tf.LayerVariable | null;
  movingMean: tf.LayerVariable;
  movingVariance: tf.LayerVariable;
}

export class PyTorchBatchNormalization extends TfjsBatchNormalization {
  static className = 'BatchNormalization';

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: LayerKwargs): tf.Tensor | tf.Tensor[] {
    if (kwargs.training !== true) return super.call(inputs, kwargs);
    const self = this as unknown as BatchNormState;
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    const axis = self.axis >= 0 ? self.axis : self.axis + x.rank;
    if (axis !== x.rank - 1) throw new Error(`batch norm ${this.name}: PyTorch-style training needs the channels last (axis −1), not axis ${self.axis}`);
    return tf.tidy(() => {
      const axes = Array.from({ length: x.rank - 1 }, (_, i) => i);
      const { mean, variance } = tf.moments(x, axes);
      const y = tf.batchNorm(x, mean, variance, self.beta?.read(), self.gamma?.read(), self.epsilon);
      const count = x.size / x.shape[axis];
      // PyTorch refuses a single value per channel in training; its unbiased variance would divide by zero.
      if (count < 2) throw new Error(`batch norm ${this.name} sees ${count} value per channel in training (PyTorch's "Expected more than 1 value per channel when training"); use a larger batch`);
      const unbiased = tf.mul(variance, count / (count - 1));
      // running = running − (running − batch)·(1 − momentum): Keras's momentum 0.9 is PyTorch's 0.1.
      const decay = 1 - self.momentum;
      for (const [variable, value] of [
        [self.movingMean, mean],
        [self.movingVariance, unbiased],
      ] as const) {
        const current = variable.read();
        variable.write(tf.sub(current, tf.mul(tf.sub(current, value), decay)));
      }
      return y;
    });
  }
}

tf.serialization.registerClass(PyTorchBatchNormalization as unknown as tf.serialization.SerializableConstructor<tf.serialization.Serializable>);

/** A batch-norm layer that trains as PyTorch's does (see above). */
export function pytorchBatchNorm(args: BatchNormArgs): tf.layers.Layer {
  return new PyTorchBatchNormalization(args);
}
