/**
 * ComfyUI interop as one module (engine/interop/comfyui/: read, import, export, report): what the
 * editor imports (pure: eslint.config.js RENDERER_SHARED), and a short name for hosts.
 */
export { exportComfyUI, formatExportReport, type ExportNodeReport, type ExportResult } from './interop/comfyui/export.js';
export { importComfyUI, PLACEHOLDER_TYPE, type ImportOptions, type ImportResult } from './interop/comfyui/import.js';
export { ComfyReadError, comfyDocFromTexts, comfyFormatOf, isWebp, MAX_COMFY_BYTES, parseJsonExact, webpExifStrings } from './interop/comfyui/read.js';
export { countStatuses, formatReport, hasUnsupported, summaryLine, type ImportReport, type NodeReport, type NodeStatus } from './interop/comfyui/report.js';
