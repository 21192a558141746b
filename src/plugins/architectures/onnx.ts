/** `onnx`: any CNN classifier exported to ONNX (torch.onnx.export, opsets 13–17), explained as it is, without training. */
import { defineOnnxArchitecture } from '../../core/tensor/onnx-architecture.ts';

const triple = { type: 'array', items: { type: 'number' }, minItems: 3, maxItems: 3 };

export const onnxArchitecture = defineOnnxArchitecture({
  id: 'onnx',
  version: '1',
  description: 'Any CNN classifier exported to ONNX (torch.onnx.export, opsets 13–17): explained and scored as it is, on the onnx engine; its layers named by torch module paths.',
  params: {
    type: 'object',
    additionalProperties: false,
    properties: {
      file: { type: 'string', description: 'The .onnx file, relative to the manifest (omit it where the model entry names one per fold with trained:).' },
      classes: { type: 'array', items: { type: 'string' }, minItems: 1, description: "Class names in the order of the model's outputs (default: the output indices; in a sweep, the dataset's classes, which the head must match)." },
      inputSize: {
        anyOf: [{ type: 'integer', minimum: 1 }, { type: 'array', items: { type: 'integer', minimum: 1 }, minItems: 2, maxItems: 2 }],
        description: 'Input [height, width] (or one side) for a model exported with a dynamic image size; a fixed one is read from the file (default: the dataset\'s imageSize).',
      },
      layout: { enum: ['nchw', 'nhwc'], default: 'nchw', description: 'How the model takes images: nchw (PyTorch) or nhwc.' },
      normalize: {
        anyOf: [{ enum: ['imagenet', 'unit'] }, { type: 'object', additionalProperties: false, required: ['mean', 'std'], properties: { mean: triple, std: triple } }],
        default: 'imagenet',
        description: 'Input normalisation the model was trained with: imagenet (torchvision\'s statistics), unit (pixels in 0…1), or { mean, std } per RGB channel.',
      },
      camLayer: { type: 'string', description: 'Default CAM target: a torch module path (features.12) or an ONNX value name (default: the last 4-D activation before the global pooling).' },
    },
  },
});
