// Regenerates schema/rules.schema.json from src/config/native-schema.ts (run after changing the schema).
import { writeFileSync } from 'node:fs';
const { nativeRuleFileSchema } = await import('../src/config/native-schema.ts');
writeFileSync(new URL('../schema/rules.schema.json', import.meta.url), `${JSON.stringify(nativeRuleFileSchema, null, 2)}\n`);
