/**
 * Which kernels the engine uses. COLLOQUY_KERNELS chooses: unset or "auto" — the native addon when it loads, else
 * the TypeScript reference; "native" — the addon, and a user error when it is not built; "reference" — TypeScript.
 */
import { UserError } from "../../util/errors.ts";
import { type Kernels, referenceKernels } from "./index.ts";
import { loadNativeAddon, nativeKernels } from "./native.ts";

let native: Kernels | null | undefined;

/** The native kernel set, or null when the addon is not built (or does not load). */
export function nativeKernelSet(): Kernels | null {
  if (native === undefined) {
    const { addon } = loadNativeAddon();
    native = addon ? nativeKernels(addon) : null;
  }
  return native;
}

/** Every kernel set this process can use, reference first (tests run each one). */
export function availableKernels(): Kernels[] {
  const n = nativeKernelSet();
  return n ? [referenceKernels, n] : [referenceKernels];
}

/** Why the native kernels are unavailable ("" when they are available). */
export function nativeUnavailableReason(): string {
  return nativeKernelSet() ? "" : loadNativeAddon().reason;
}

/** The kernels a new Transformer or Optimizer uses by default. */
export function defaultKernels(): Kernels {
  const want = (process.env.COLLOQUY_KERNELS ?? "auto").trim().toLowerCase();
  if (want === "reference") return referenceKernels;
  if (want === "native") {
    const n = nativeKernelSet();
    if (!n)
      throw new UserError(
        "E_NO_NATIVE",
        `COLLOQUY_KERNELS=native but the native kernels are unavailable: ${loadNativeAddon().reason}`,
        "run `npm run build:native` (needs a C compiler), or unset COLLOQUY_KERNELS",
      );
    return n;
  }
  if (want !== "auto" && want !== "") {
    throw new UserError("E_BAD_ENV", `COLLOQUY_KERNELS=${process.env.COLLOQUY_KERNELS} is not one of auto, native, reference`);
  }
  return nativeKernelSet() ?? referenceKernels;
}

/** Each kernel set the tests run on; the native one carries a skip reason when the addon is not built. */
export function kernelVariants(): { name: string; kernels: Kernels; skip: string | false }[] {
  const n = nativeKernelSet();
  return [
    { name: "reference", kernels: referenceKernels, skip: false },
    {
      name: "native",
      kernels: n ?? referenceKernels,
      skip: n ? false : `native kernels unavailable (${loadNativeAddon().reason}); build them with \`npm run build:native\``,
    },
  ];
}
