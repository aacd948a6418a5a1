import type { AuthVariables } from './middleware/auth.ts';
import type { RequestIdVariables } from './middleware/request-id.ts';

/** The app's Variables, declared once. */
export type AppEnv = { Variables: RequestIdVariables & AuthVariables };
