/**
 * The one place built-in plugins are registered. Core never imports a plugin
 * by name: the CLI hands this module to the registry (and to every worker).
 * Adding a method or metric is one file under src/plugins plus one line here.
 */
import type { Plugin } from '../core/plugins/types.ts';
import { imageFolder } from './datasets/image-folder.ts';
import { kfoldFolders } from './datasets/kfold-folders.ts';
import { syntheticHfus } from './datasets/synthetic-hfus.ts';
import { denseNets } from './architectures/densenet.ts';
import { googLeNet } from './architectures/googlenet.ts';
import { mobileNetV2 } from './architectures/mobilenet-v2.ts';
import { onnxArchitecture } from './architectures/onnx.ts';
import { resNets } from './architectures/resnet.ts';
import { smallCnn } from './architectures/small-cnn.ts';
import { ablationcam } from './explainers/cam/ablationcam.ts';
import { eigencam } from './explainers/cam/eigencam.ts';
import { eigengradcam } from './explainers/cam/eigengradcam.ts';
import { fullgrad } from './explainers/cam/fullgrad.ts';
import { gradcam } from './explainers/cam/gradcam.ts';
import { gradcamElementwise } from './explainers/cam/gradcam-elementwise.ts';
import { gradcamPlusPlus } from './explainers/cam/gradcam-plusplus.ts';
import { hirescam } from './explainers/cam/hirescam.ts';
import { layercam } from './explainers/cam/layercam.ts';
import { scorecam } from './explainers/cam/scorecam.ts';
import { xgradcam } from './explainers/cam/xgradcam.ts';
import { deepLift } from './explainers/attribution/deeplift.ts';
import { gradientShap } from './explainers/attribution/gradient-shap.ts';
import { guidedBackprop } from './explainers/attribution/guided-backprop.ts';
import { inputXGradient } from './explainers/attribution/input-x-gradient.ts';
import { integratedGradients } from './explainers/attribution/integrated-gradients.ts';
import { smoothGrad, varGrad } from './explainers/attribution/noise-tunnel.ts';
import { occlusion } from './explainers/attribution/occlusion.ts';
import { saliency } from './explainers/attribution/saliency.ts';
import { hitRateMetric } from './metrics/hit-rate.ts';
import { iouMetric } from './metrics/iou.ts';
import { layerCoverageMetric } from './metrics/layer-coverage.ts';
import { pixelAucMetric } from './metrics/pixel-auc.ts';
import { pointingGameMetric } from './metrics/pointing-game.ts';
import { relevanceMassMetric } from './metrics/relevance-mass.ts';
import { relevanceRankMetric } from './metrics/relevance-rank.ts';
import { confidenceChange } from './metrics/confidence-change.ts';
import { deletion } from './metrics/deletion.ts';
import { insertion } from './metrics/insertion.ts';
import { localisationByMethod } from './charts/localisation-by-method.ts';
import { localisationBySign } from './charts/localisation-by-sign.ts';
import { confidence } from './charts/confidence.ts';
import { iouThresholds } from './charts/iou-thresholds.ts';
import { layerCoverage } from './charts/layer-coverage.ts';
import { trainingCurves } from './charts/training-curves.ts';
import { confusionMatrices } from './charts/confusion-matrices.ts';
import { deletionInsertion } from './charts/deletion-insertion.ts';

const builtins: Plugin[] = [
  imageFolder,
  kfoldFolders,
  syntheticHfus,
  smallCnn,
  mobileNetV2,
  ...resNets,
  ...denseNets,
  onnxArchitecture,
  googLeNet,
  gradcam,
  hirescam,
  gradcamPlusPlus,
  xgradcam,
  layercam,
  gradcamElementwise,
  eigencam,
  eigengradcam,
  scorecam,
  ablationcam,
  fullgrad,
  saliency,
  inputXGradient,
  integratedGradients,
  gradientShap,
  occlusion,
  deepLift,
  guidedBackprop,
  smoothGrad,
  varGrad,
  hitRateMetric,
  layerCoverageMetric,
  iouMetric,
  pointingGameMetric,
  relevanceMassMetric,
  relevanceRankMetric,
  pixelAucMetric,
  confidenceChange,
  deletion,
  insertion,
  localisationByMethod,
  localisationBySign,
  confidence,
  iouThresholds,
  layerCoverage,
  trainingCurves,
  confusionMatrices,
  deletionInsertion,
];

export default builtins;
