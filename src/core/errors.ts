/**
 * A mistake the user can fix (bad manifest, missing file, unknown plugin…).
 * The CLI prints its message alone — one clear sentence, no stack trace.
 */
export class UserError extends Error {
  constructor(message: string, readonly details: string[] = []) {
    super(message);
    this.name = 'UserError';
  }
}

/** A required input file or folder does not exist. */
export class MissingInputError extends UserError {
  constructor(readonly path: string, what: string, hint = 'check the path in the manifest') {
    super(`${what} not found: ${path} (${hint}).`);
    this.name = 'MissingInputError';
  }
}

export function isUserError(error: unknown): error is UserError {
  return error instanceof Error && (error.name === 'UserError' || error.name === 'MissingInputError' || error instanceof UserError);
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
