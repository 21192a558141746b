/**
 * What Vulkan a Linux machine has, found without loading it: Dawn (inside
 * the `webgpu` package and inside ONNX Runtime's WebGPU provider) prints a
 * C++ warning to stderr when it cannot load Vulkan, so `auto` looks first
 * and asks Dawn only where a loader and a driver exist. Elsewhere (macOS:
 * Metal, Windows: D3D12) this says nothing and Dawn is asked directly.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface VulkanDrivers {
  /** Where libvulkan.so.1 was found, or undefined. */
  loader?: string;
  /** Installable client drivers (ICD manifests) the loader would read. */
  drivers: { file: string; software: boolean }[];
  /** GPU device nodes a hardware driver could open (/dev/dri/renderD*, /dev/nvidia0, WSL's /dev/dxg). */
  gpuDevices: string[];
}

const LOADER = 'libvulkan.so.1';
const LIBRARY_DIRS = ['/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib/aarch64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/lib64', '/usr/lib64', '/lib', '/usr/lib', '/usr/local/lib'];

function listEnv(name: string): string[] {
  return (process.env[name] ?? '').split(path.delimiter).filter(Boolean);
}

/** The loader as the dynamic linker would find it: LD_LIBRARY_PATH, the ld.so cache, the default folders. */
export function findVulkanLoader(extraDirs: string[] = []): string | undefined {
  for (const dir of [...extraDirs, ...listEnv('LD_LIBRARY_PATH'), ...LIBRARY_DIRS]) {
    const file = path.join(dir, LOADER);
    if (existsSync(file)) return file;
  }
  try {
    // The cache lists every library ldconfig found, by name, in plain bytes.
    if (readFileSync('/etc/ld.so.cache').includes(LOADER)) return `${LOADER} (ld.so.cache)`;
  } catch {
    // no cache: the folders above were all there is
  }
  return undefined;
}

/** lavapipe (Mesa's llvmpipe for Vulkan) and SwiftShader run on the CPU. */
export function isSoftwareDriver(manifestFile: string, text = ''): boolean {
  return /lvp|lavapipe|llvmpipe|swiftshader/i.test(path.basename(manifestFile)) || /lvp|lavapipe|swiftshader/i.test(text);
}

/** The ICD manifest files the Vulkan loader reads, overrides first, as the loader documents its search. */
export function vulkanDriverFiles(): string[] {
  const override = [...listEnv('VK_DRIVER_FILES'), ...listEnv('VK_ICD_FILENAMES')];
  const added = listEnv('VK_ADD_DRIVER_FILES');
  const expand = (entry: string): string[] => {
    try {
      if (!existsSync(entry)) return [];
      if (entry.endsWith('.json')) return [entry];
      return readdirSync(entry)
        .filter((name) => name.endsWith('.json'))
        .map((name) => path.join(entry, name));
    } catch {
      return [];
    }
  };
  if (override.length > 0) return [...override, ...added].flatMap(expand);
  const config = (process.env.XDG_CONFIG_DIRS || '/etc/xdg').split(':');
  const data = (process.env.XDG_DATA_DIRS || '/usr/local/share:/usr/share').split(':');
  const home = process.env.XDG_DATA_HOME || path.join(os.homedir(), '.local/share');
  const dirs = [...config, '/etc', home, ...data].map((dir) => path.join(dir, 'vulkan/icd.d'));
  return [...added, ...dirs].flatMap(expand);
}

/**
 * Mesa's package installs hardware drivers (intel, radeon, …) beside
 * lavapipe whether or not such a GPU exists; without a device node none of
 * them can find one.
 */
export function gpuDeviceNodes(): string[] {
  const list = (dir: string, pattern: RegExp) => {
    try {
      return readdirSync(dir)
        .filter((name) => pattern.test(name))
        .map((name) => path.join(dir, name));
    } catch {
      return [];
    }
  };
  return [...list('/dev/dri', /^renderD\d+$/), ...list('/dev', /^nvidia\d+$|^dxg$/)];
}

export function vulkanDrivers(extraLoaderDirs: string[] = []): VulkanDrivers {
  const drivers = vulkanDriverFiles().map((file) => {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      // unreadable: judged by its name
    }
    return { file, software: isSoftwareDriver(file, text) };
  });
  return { loader: findVulkanLoader(extraLoaderDirs), drivers, gpuDevices: gpuDeviceNodes() };
}

/** Why Dawn would find no usable adapter with these drivers, or undefined when it may. */
export function vulkanProblem(found: VulkanDrivers, allowSoftwareAdapter: boolean): string | undefined {
  if (!found.loader) return `no Vulkan loader (${LOADER}) installed`;
  if (found.drivers.length === 0) return 'no Vulkan driver installed (no ICD manifest in vulkan/icd.d)';
  if (hasHardwareDriver(found)) return undefined;
  const software = found.drivers.filter((d) => d.software);
  if (software.length === 0) return `no GPU device (/dev/dri/renderD*, /dev/nvidia*) for the Vulkan drivers installed`;
  if (allowSoftwareAdapter) return undefined;
  return `only a software Vulkan driver (${software.map((d) => path.basename(d.file)).join(', ')}) and no GPU device; set execution.allowSoftwareAdapter: true to use it anyway (for tests: it is slow)`;
}

/** A hardware driver with a GPU device node for it to open. */
export function hasHardwareDriver(found: VulkanDrivers): boolean {
  return found.gpuDevices.length > 0 && found.drivers.some((d) => !d.software);
}

/**
 * Why Dawn would find no usable adapter here, or undefined when it may:
 * checked only on Linux, where Vulkan is Dawn's only way to a GPU.
 */
export function vulkanMissing(options: { allowSoftwareAdapter: boolean; loaderDirs?: string[] }): string | undefined {
  if (process.platform !== 'linux') return undefined;
  return vulkanProblem(vulkanDrivers(options.loaderDirs), options.allowSoftwareAdapter);
}
